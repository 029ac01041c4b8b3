"""A simulated bright-field microscope with a drifting, growing sample.

The default microscope everywhere (GUI demo, headless sessions, tests). The true defocus
of a frame is ``sample_z(t) - stage_z`` where ``sample_z`` follows a
:class:`~napari_zfocus.live.drift.ThermalDrift` and ``stage_z`` is the simulated focus
drive. Speed comes from a plane cache: a fine z-grid of the current scene (every 0.25 um
over +/-25 um by default), updated every few simulated minutes as the cells grow; each frame
interpolates linearly between the two nearest planes and adds fresh camera noise.
Planes are rendered lazily, a small block at a time around the defocus being imaged, so a
session that stays in focus renders only a few planes per scene update.

Time comes from a clock: :class:`SimClock` (advanced by the caller: tests, benchmarks,
headless sessions run as fast as the CPU allows) or :class:`ScaledClock` (real time,
optionally sped up, for the GUI).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.drift import Drift, DriftSettings, ThermalDrift
from napari_zfocus.live.microscope import Frame, StageError, check_z_target
from napari_zfocus.live.scenes import SceneRenderer


class Clock(Protocol):
    """Time source of the simulation, seconds."""

    def now(self) -> float: ...

    def sleep(self, dt_s: float) -> None: ...


class SimClock:
    """A clock that only moves when told to (deterministic, as fast as the CPU allows)."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._t = float(start_s)
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current simulated time, s."""
        return self._t

    def advance(self, dt_s: float) -> float:
        """Move time forward by ``dt_s`` (>= 0) and return the new time."""
        if dt_s < 0:
            raise ValueError(f"a clock cannot go back in time (dt = {dt_s} s)")
        with self._lock:
            self._t += float(dt_s)
            return self._t

    def sleep(self, dt_s: float) -> None:
        """Simulated sleep: advance without waiting."""
        self.advance(max(dt_s, 0.0))


class ScaledClock:
    """Real time multiplied by ``scale`` (``scale=60``: one simulated minute per second)."""

    def __init__(self, scale: float = 1.0) -> None:
        if not scale > 0:
            raise ZFocusError(f"clock scale must be positive, got {scale}")
        self.scale = float(scale)
        self._t0 = time.monotonic()

    def now(self) -> float:
        """Simulated seconds since construction."""
        return (time.monotonic() - self._t0) * self.scale

    def sleep(self, dt_s: float) -> None:
        """Sleep ``dt_s`` simulated seconds."""
        if dt_s > 0:
            time.sleep(dt_s / self.scale)


@dataclass
class SimulatedMicroscopeSettings:
    """Camera, focus drive and plane cache of :class:`SimulatedMicroscope`."""

    shape: tuple[int, int] = (256, 256)
    pixel_size_um: float = 0.24
    z_limits_um: tuple[float, float] = (-200.0, 200.0)
    start_z_um: float = 0.0  # the sample starts in focus at this stage position
    plane_step_um: float = 0.25
    plane_range_um: float = 25.0
    rerender_every_s: float = 600.0  # simulated seconds between scene updates
    render_block: int = 6  # planes rendered together when a missing one is needed
    background_render: bool = False  # render the next scene in a thread (GUI) instead of inline
    exposure_s: float = 0.01
    stage_speed_um_s: float = 200.0
    stage_settle_s: float = 0.02

    def validate(self) -> None:
        """Raise :class:`ZFocusError` on an impossible setting."""
        if len(self.shape) != 2 or min(self.shape) < 8:
            raise ZFocusError(f"frame shape must be two sizes >= 8 px, got {self.shape}")
        if not self.pixel_size_um > 0:
            raise ZFocusError(f"pixel size must be positive, got {self.pixel_size_um} um")
        lo, hi = self.z_limits_um
        if not lo < hi or not lo <= self.start_z_um <= hi:
            raise ZFocusError(
                f"stage limits {self.z_limits_um} must be increasing and contain the start "
                f"position {self.start_z_um} um"
            )
        if not (0 < self.plane_step_um <= self.plane_range_um):
            raise ZFocusError(
                f"plane step {self.plane_step_um} um must be in (0, plane range "
                f"{self.plane_range_um} um]"
            )


class SimulatedMicroscope:
    """Camera + focus drive over a simulated, drifting, growing sample.

    Parameters
    ----------
    settings
        Frame, stage and cache settings.
    drift
        Sample drift model (any :class:`~napari_zfocus.live.drift.Drift`); default
        :class:`ThermalDrift` with the paper's 40 um / 24 h.
    renderer
        Source of intensity planes; default :class:`~napari_zfocus.live.scenes.SimulatorRenderer`
        (the project's bright-field simulator).
    clock
        Time source; default a :class:`SimClock` at 0 (advance it, or use :meth:`wait`).
    seed
        Seed of the camera noise (and of the default drift and renderer).
    """

    def __init__(
        self,
        settings: SimulatedMicroscopeSettings | None = None,
        *,
        drift: Drift | None = None,
        renderer: SceneRenderer | None = None,
        clock: Clock | None = None,
        seed: int = 0,
    ) -> None:
        self.settings = settings or SimulatedMicroscopeSettings()
        self.settings.validate()
        s = self.settings
        self.pixel_size_um = float(s.pixel_size_um)
        self.z_limits_um = (float(s.z_limits_um[0]), float(s.z_limits_um[1]))
        self.clock: Clock = clock or SimClock()
        self.drift: Drift = drift or ThermalDrift(DriftSettings(), seed=seed)
        if renderer is None:
            from napari_zfocus.live.scenes import SimulatorRenderer

            renderer = SimulatorRenderer(s.shape, s.pixel_size_um, seed=seed)
        self.renderer = renderer
        self._rng = np.random.default_rng(seed + 1)
        n = int(round(2 * s.plane_range_um / s.plane_step_um)) + 1
        self.plane_z_um = np.linspace(-s.plane_range_um, s.plane_range_um, n)
        self._z = float(s.start_z_um)
        self._move_end_s = -np.inf
        self._closed = False
        self._lock = threading.Lock()  # guards the plane cache swap
        # Plane cache of the current scene "epoch": plane index -> float32 (Y, X). Planes
        # are rendered lazily in small blocks around the defocus actually imaged, so
        # a focused session renders a handful of planes per epoch, not the whole stack.
        self._planes: dict[int, np.ndarray] = {}
        self._epoch_s = self.clock.now()
        self._render_thread: threading.Thread | None = None
        self.n_renders = 0  # render calls (blocks), for benchmarks
        self.last_true_defocus_um = float("nan")  # of the last snapped frame

    # -- sample -------------------------------------------------------------------

    def sample_z_um(self, t_s: float | None = None) -> float:
        """Stage position at which the sample is in focus at time ``t_s`` (default now)."""
        t = self.clock.now() if t_s is None else t_s
        return self.settings.start_z_um + float(self.drift.sample_z_um(t))

    @property
    def scene_time_s(self) -> float:
        """Simulated time of the scene the frames show now (it moves on every
        ``rerender_every_s``, at the next frame)."""
        return self._epoch_s

    def true_defocus_um(self, t_s: float | None = None) -> float:
        """Sample z minus focal plane z now (positive: sample above the focal plane)."""
        return self.sample_z_um(t_s) - self._z

    def _render_block(self, indices: list[int], t_s: float) -> dict[int, np.ndarray]:
        """Render the planes ``indices`` (plus neighbours, one block) of the scene at ``t_s``."""
        half = self.settings.render_block // 2
        lo = max(0, min(indices) - half)
        hi = min(len(self.plane_z_um) - 1, max(indices) + half)
        ks = list(range(lo, hi + 1))
        planes = np.asarray(self.renderer.render_planes(self.plane_z_um[ks], t_s), np.float32)
        self.n_renders += 1
        return dict(zip(ks, planes, strict=True))

    def _start_epoch(self, t_s: float, around: list[int]) -> None:
        """Background job: render the scene at ``t_s`` around ``around``, then swap it in."""
        planes = self._render_block(around, t_s)
        with self._lock:
            self._planes, self._epoch_s = planes, t_s

    def _maybe_new_epoch(self, around: list[int]) -> None:
        """Move the scene on when it is older than ``rerender_every_s``."""
        t = self.clock.now()
        if t - self._epoch_s < self.settings.rerender_every_s:
            return
        if not self.settings.background_render:
            self._start_epoch(t, around)
            return
        if self._render_thread is None or not self._render_thread.is_alive():
            # Frames keep coming from the old planes until the new ones are swapped in.
            self._render_thread = threading.Thread(
                target=self._start_epoch, args=(t, around), name="zfocus-sim-render", daemon=True
            )
            self._render_thread.start()

    def _plane_pair(self, defocus_um: float) -> tuple[np.ndarray, np.ndarray, np.float32]:
        """The two cached planes around ``defocus_um`` and the interpolation weight."""
        z = self.plane_z_um
        pos = (np.clip(defocus_um, z[0], z[-1]) - z[0]) / (z[1] - z[0])
        i = min(int(pos), len(z) - 2)
        w = np.float32(pos - i)
        self._maybe_new_epoch([i, i + 1])
        rendering = self._render_thread is not None and self._render_thread.is_alive()
        with self._lock:
            planes = self._planes
            missing = [k for k in (i, i + 1) if k not in planes]
        if missing and not rendering:
            block = self._render_block(missing, self._epoch_s)
            with self._lock:
                self._planes.update(block)
                planes = self._planes
        elif missing:
            # The renderer is busy with the next scene: use the nearest plane we have.
            have = np.array(sorted(planes))
            nearest = {k: int(have[np.argmin(np.abs(have - k))]) for k in (i, i + 1)}
            return planes[nearest[i]], planes[nearest[i + 1]], w
        return planes[i], planes[i + 1], w

    def intensity_at(self, defocus_um: float) -> np.ndarray:
        """Noise-free float32 intensity (Y, X) at ``defocus_um`` of the current scene.

        Defocus beyond the plane range shows the outermost plane (far out of focus,
        where the image barely changes any more).
        """
        a, b, w = self._plane_pair(defocus_um)
        return a * (np.float32(1) - w) + b * w

    def image_at(self, defocus_um: float) -> np.ndarray:
        """Noisy uint16 camera frame at ``defocus_um`` of the current scene."""
        return self.renderer.camera(self.intensity_at(defocus_um), self._rng)

    # -- Microscope protocol -----------------------------------------------------

    def snap(self) -> Frame:
        """One frame at the current stage position and simulated time."""
        if self._closed:
            raise StageError("simulated microscope: closed")
        t = self.clock.now()
        defocus = self.true_defocus_um(t)
        image = self.image_at(defocus)
        self.last_true_defocus_um = defocus
        if isinstance(self.clock, SimClock):
            self.clock.advance(self.settings.exposure_s)
        return Frame(
            image=image,
            timestamp_s=t,
            stage_z_um=self._z,
            metadata={"true_defocus_um": defocus, "sample_z_um": self.sample_z_um(t)},
        )

    def stream(self, n: int | None = None) -> Iterator[Frame]:
        """Yield ``n`` frames (endless if None), one per exposure."""
        count = 0
        while n is None or count < n:
            yield self.snap()
            count += 1

    def get_z(self) -> float:
        """Current focus drive position, um."""
        return self._z

    def move_z_to(self, z_um: float) -> None:
        """Move to ``z_um``; busy for settle time + distance / speed (simulated)."""
        if self._closed:
            raise StageError("simulated microscope: closed")
        z = check_z_target(z_um, self.z_limits_um, "simulated focus drive", current_um=self._z)
        s = self.settings
        travel_s = abs(z - self._z) / s.stage_speed_um_s
        self._move_end_s = self.clock.now() + s.stage_settle_s + travel_s
        self._z = z

    def move_z_by(self, dz_um: float) -> None:
        """Relative move."""
        self.move_z_to(self._z + float(dz_um))

    def is_busy(self) -> bool:
        """True until the last move has finished and settled (on the simulated clock)."""
        return self.clock.now() < self._move_end_s

    def wait(self, dt_s: float) -> None:
        """Let ``dt_s`` of simulated time pass (instant on a :class:`SimClock`)."""
        self.clock.sleep(dt_s)

    def close(self) -> None:
        """Stop the background renderer (idempotent)."""
        self._closed = True
        thread = self._render_thread
        if thread is not None and thread.is_alive():
            thread.join(timeout=30)
        self._render_thread = None

    def __enter__(self) -> SimulatedMicroscope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class OraclePrediction:
    """What :class:`OraclePredictor` returns (the fields the controller reads)."""

    z_um: float
    z_argmax_um: float
    confidence: float
    entropy: float = float("nan")
    bimodal: bool = False


class OraclePredictor:
    """A "perfect model" for the simulated microscope: true defocus + Gaussian noise.

    It reads the true defocus of the microscope's last snapped frame, so it validates
    the controller + microscope + drift loop without a trained network.

    Parameters
    ----------
    microscope
        The simulated microscope whose frames are being predicted.
    noise_um
        Standard deviation of the estimate noise.
    bias_um
        Constant estimate bias (the lock absorbs it).
    gain
        The estimate is ``gain`` times the true defocus: a model used at another condenser
        aperture than it was trained at reads distances with such a gain (0.74 and 1.21
        measured, README "Beyond our own simulator").
    confidence
        Reported confidence.
    seed
        Seed of the noise.
    """

    def __init__(
        self,
        microscope: SimulatedMicroscope,
        noise_um: float = 0.2,
        *,
        bias_um: float = 0.0,
        gain: float = 1.0,
        confidence: float = 0.9,
        seed: int = 0,
    ) -> None:
        self.microscope = microscope
        self.noise_um = float(noise_um)
        self.bias_um = float(bias_um)
        self.gain = float(gain)
        self.confidence = float(confidence)
        self._rng = np.random.default_rng(seed)

    def predict(self, image: np.ndarray, pixel_size_um: float) -> OraclePrediction:
        """Estimate of the last frame's defocus (the image itself is ignored)."""
        z = self.gain * self.microscope.last_true_defocus_um + self.bias_um
        z += self._rng.normal(0.0, self.noise_um) if self.noise_um > 0 else 0.0
        return OraclePrediction(z_um=z, z_argmax_um=float(np.rint(z)), confidence=self.confidence)
