"""A simulated multi-position microscope on pymmcore-plus ``UniMMCore``, for MDA without hardware.

:class:`SimulatedScope` holds one
:class:`~napari_zfocus.live.simulated_microscope.SimulatedMicroscope` per stage position (a
well): its own scene, seed and renderer, and its own drift (a thermal drift shared by the
plate plus the position's own slow wander), all on ONE simulated clock.
Its ``core`` is a ``UniMMCore`` with Python devices (see :mod:`._scope_devices`): XY stage
``ZFocusSimXY``, focus stage ``ZFocusSimZ``, camera ``ZFocusSimCamera`` and the channel group
``Channel`` (presets ``BF`` and ``FL``), so the default pymmcore-plus ``MDAEngine`` (or this
package's engine) runs real ``useq.MDASequence`` acquisitions on it.

Each snap renders, for the position whose field holds the XY stage, that position's scene at
``true defocus = focus_z_um(p, t) - stage z`` (positive: the sample lies above the focal
plane, the convention of :mod:`napari_zfocus.live.simulated_microscope`); off every position
it shows an empty field. ``FL`` frames are a cheap fluorescence look-alike derived from the
in-focus bright-field plane (dark background, bright cells, blur growing with ``|defocus|``).
A snap advances the simulated clock by its exposure and costs no real waiting.

Time-lapses without waiting: the runner sleeps in real time until each event's
``min_start_time``. Run inside ``with simulated_waits(scope): core.mda.run(sequence)``: it wraps
the registered engine's ``event_iterator`` so the runner still passes the real
``MDASequence`` to ``setup_sequence`` (and writers), while each event moves ``scope.clock`` to
its start time and reaches the runner with ``min_start_time=None``.
:func:`simulated_time_events` is the same step for a plain iterable of events (passing an
iterator to ``core.mda.run`` makes the runner skip the engine's ``event_iterator`` and hand a
placeholder ``GeneratorMDASequence`` to ``setup_sequence``, so prefer the context manager).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_zfocus.acquisition import _scope_devices as devices
from napari_zfocus.acquisition._scope_frames import BIMODAL_SEPARATION_UM, BLANK_ADU, FrameMaker
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.drift import DriftSettings, SumDrift, ThermalDrift
from napari_zfocus.live.microscope import CameraError, StageError
from napari_zfocus.live.scenes import PatternRenderer, SceneRenderer, SimulatorRenderer
from napari_zfocus.live.simulated_microscope import (
    SimClock,
    SimulatedMicroscope,
    SimulatedMicroscopeSettings,
)
from napari_zfocus.validation import check_choice, check_interval, check_number

if TYPE_CHECKING:
    import useq

RENDERERS = ("simulator", "pattern")
__all__ = [
    "BIMODAL_SEPARATION_UM", "BLANK_ADU", "RENDERERS", "ScopeFaults", "SimulatedScope",
    "SimulatedScopeSettings", "SnapRecord", "simulated_time_events", "simulated_waits",
]


@dataclass
class SimulatedScopeSettings:
    """Plate, drift, camera and renderer of :class:`SimulatedScope` (um, h, ms)."""

    positions: int = 4
    drift_um: float = 40.0  # shared thermal drift over duration_h (the paper: 40 um per 24 h)
    duration_h: float = 24.0
    wander_um: float = 0.5  # rms of each position's own slow wander (on top of the shared drift)
    offset_range_um: float = 20.0  # each position's in-focus z at t=0 is drawn in +/- this
    spacing_um: float = 1500.0  # XY distance between positions (a grid of wells)
    shape: tuple[int, int] = (256, 256)
    pixel_size_um: float = 0.24
    z_limits_um: tuple[float, float] = (-1000.0, 1000.0)  # what the focus stage accepts
    bf_exposure_ms: float = 10.0
    fl_exposure_ms: float = 50.0
    renderer: str = "simulator"  # "simulator" (bright-field simulator) or "pattern" (fast)
    seed: int = 0
    # Simulated seconds between re-renders of a scene (its cells grow and move meanwhile).
    # A new bright-field scene costs ~0.35-0.8 s on 2 cores: a 24 h, 10-minute, 4-position
    # time-lapse took 64 ms of CPU per frame with 1800 s, ~2x that with 600 s
    # (benchmarks/bench_simulated_scope.py).
    scene_update_s: float = 1800.0

    def validate(self) -> None:
        """Raise :class:`ZFocusError` naming the first impossible field."""
        check_number(self.positions, "positions", lo=1, hi=10_000, integer=True)
        check_number(self.drift_um, "drift_um", lo=-1e4, hi=1e4)
        check_number(self.duration_h, "duration_h", lo=0, lo_open=True, hi=1e4)
        check_number(self.wander_um, "wander_um", lo=0, hi=1e3)
        check_number(self.offset_range_um, "offset_range_um", lo=0, hi=1e4)
        check_number(self.pixel_size_um, "pixel_size_um", lo=0, lo_open=True, hi=100)
        if len(self.shape) != 2:
            raise ZFocusError(f"shape must be two sizes (Y, X), got {self.shape!r}")
        for size in self.shape:
            check_number(size, "shape", lo=8, hi=8192, integer=True)
        field_um = max(self.shape) * self.pixel_size_um
        check_number(self.spacing_um, "spacing_um", lo=field_um, hi=1e6)
        lo, hi = check_interval(self.z_limits_um, "z_limits_um", lo=-1e5, hi=1e5)
        if not (lo <= -self.offset_range_um and self.offset_range_um <= hi):
            raise ZFocusError(
                f"z_limits_um {self.z_limits_um} must contain +/- offset_range_um "
                f"({self.offset_range_um:g} um)"
            )
        check_number(self.bf_exposure_ms, "bf_exposure_ms", lo=0, lo_open=True, hi=1e5)
        check_number(self.fl_exposure_ms, "fl_exposure_ms", lo=0, lo_open=True, hi=1e5)
        check_choice(self.renderer, "renderer", RENDERERS)
        check_number(self.seed, "seed", lo=0, hi=2**32 - 1, integer=True)
        check_number(self.scene_update_s, "scene_update_s", lo=1, hi=1e6)


@dataclass(frozen=True)
class SnapRecord:
    """What the camera saw in one snap (the ground truth behind a frame).

    ``true_defocus_um`` is ``focus_z_um(p_index, time_s) - stage_z_um``: positive when the
    sample lies above the focal plane (move the stage up by it to focus); None off every
    position. ``fault`` names a fault hook that shaped this frame (``"blank"`` or
    ``"bimodal"``), else None.
    """

    time_s: float
    x_um: float
    y_um: float
    stage_z_um: float
    channel: str
    p_index: int | None
    true_defocus_um: float | None
    exposure_ms: float
    fault: str | None = None


@dataclass
class ScopeFaults:
    """Test hooks: how many of the upcoming events fail (each fires once, then counts down).

    ``camera_errors``: snaps raise :class:`~napari_zfocus.live.microscope.CameraError`;
    ``blank_frames``: frames are constant (``BLANK_ADU``); ``bimodal_frames``: frames mix
    two planes ``BIMODAL_SEPARATION_UM`` apart; ``stage_errors``: focus moves raise
    :class:`~napari_zfocus.live.microscope.StageError` (the stage does not move).
    """

    camera_errors: int = 0
    blank_frames: int = 0
    bimodal_frames: int = 0
    stage_errors: int = 0

    def take(self, name: str) -> bool:
        """Fire fault ``name`` if one is pending (and count it down)."""
        pending = int(getattr(self, name))
        if pending <= 0:
            return False
        setattr(self, name, pending - 1)
        return True


def _grid_xy(n: int, spacing_um: float) -> list[tuple[float, float]]:
    """Centres of ``n`` wells on a square-ish grid, row by row, from (0, 0)."""
    cols = math.ceil(math.sqrt(n))
    return [(float(i % cols) * spacing_um, float(i // cols) * spacing_um) for i in range(n)]


class SimulatedScope:
    """A simulated plate on a ``UniMMCore``: one drifting scene per position, one clock.

    The core starts over position ``p0``, in focus, in channel ``BF``.

    Parameters
    ----------
    settings
        Plate, drift, camera and renderer; default :class:`SimulatedScopeSettings`.
    clock
        Simulated time (default a new :class:`SimClock` at 0). The camera advances it by
        the exposure of every snap.

    Attributes
    ----------
    settings, clock, faults
        As given; ``faults`` starts with every count at 0.
    last_snap
        :class:`SnapRecord` of the most recent frame (None before the first).
    snaps
        Frames delivered so far, all channels (a camera fault delivers none).
    """

    def __init__(
        self, settings: SimulatedScopeSettings | None = None, clock: SimClock | None = None
    ) -> None:
        self.settings = s = settings or SimulatedScopeSettings()
        s.validate()
        self.clock = clock if clock is not None else SimClock()
        self.faults = ScopeFaults()
        self.last_snap: SnapRecord | None = None
        self.snaps = 0
        self._lock = threading.RLock()
        self._closed = False
        n = int(s.positions)
        seeds = np.random.SeedSequence(int(s.seed)).generate_state(2 * n + 2)
        rng = np.random.default_rng(seeds[0])
        self._offsets_um = rng.uniform(-s.offset_range_um, s.offset_range_um, n)
        self._xy_um = _grid_xy(n, float(s.spacing_um))
        self._seeds = [int(x) for x in seeds[2 : 2 + n]]
        shared = ThermalDrift(
            DriftSettings(total_drift_um=s.drift_um, duration_s=s.duration_h * 3600.0),
            seed=int(seeds[1]),
        )
        own = DriftSettings(total_drift_um=0.0, duration_s=s.duration_h * 3600.0,
                            wander_um=s.wander_um, ripple_fraction=0.0, jump_rate_per_h=0.0)
        self._drifts = [SumDrift(shared, ThermalDrift(own, seed=int(seeds[2 + n + p])))
                        for p in range(n)]
        # Scenes are built on the first visit: the bright-field simulator takes ~1 s each.
        self._microscopes: list[SimulatedMicroscope | None] = [None] * n
        self._frames = FrameMaker(s.shape, s.pixel_size_um, s.fl_exposure_ms, int(seeds[-1]))
        self._core, self._devices = devices.build_scope_core(
            self, shape=(int(s.shape[0]), int(s.shape[1])), pixel_size_um=s.pixel_size_um,
            z_limits_um=(float(s.z_limits_um[0]), float(s.z_limits_um[1])),
            exposures_ms={"BF": s.bf_exposure_ms, "FL": s.fl_exposure_ms},
        )
        # Start over the first position, in focus.
        self._core.setXYPosition(*self._xy_um[0])
        self._core.setPosition(float(self._offsets_um[0]))

    # -- the plate ---------------------------------------------------------------

    @property
    def core(self) -> Any:
        """The ``UniMMCore`` (raises once the scope is closed)."""
        if self._closed:
            raise ZFocusError("simulated scope: closed (its core was released)")
        return self._core

    def position_list(self) -> list[useq.Position]:
        """The positions as ``useq.Position``: x, y, in-focus z at t = 0, names ``p0``..."""
        import useq

        return [useq.Position(x=x, y=y, z=float(z), name=f"p{i}")
                for i, ((x, y), z) in enumerate(zip(self._xy_um, self._offsets_um, strict=True))]

    def _check_index(self, p_index: int) -> int:
        return int(check_number(p_index, "p_index", lo=0, hi=len(self._xy_um) - 1, integer=True))

    def focus_z_um(self, p_index: int, t_s: float | None = None) -> float:
        """Stage z at which position ``p_index`` is in focus at ``t_s`` (default now).

        Its offset at t = 0, plus the shared drift, plus its own wander.
        """
        p = self._check_index(p_index)
        t = self.clock.now() if t_s is None else float(t_s)
        return float(self._offsets_um[p]) + float(self._drifts[p].sample_z_um(t))

    def position_at(self, x_um: float, y_um: float) -> int | None:
        """Index of the position whose camera field holds ``(x_um, y_um)``, else None."""
        half_y = self.settings.shape[0] * self.settings.pixel_size_um / 2.0
        half_x = self.settings.shape[1] * self.settings.pixel_size_um / 2.0
        for p, (x, y) in enumerate(self._xy_um):
            if abs(x_um - x) <= half_x and abs(y_um - y) <= half_y:
                return p
        return None

    @property
    def renders(self) -> int:
        """Scene render calls (blocks of planes) of all positions so far, for benchmarks."""
        return sum(mic.n_renders for mic in self._microscopes if mic is not None)

    def _microscope(self, p: int) -> SimulatedMicroscope:
        mic = self._microscopes[p]
        if mic is None:
            s = self.settings
            renderer: SceneRenderer
            if s.renderer == "pattern":
                renderer = PatternRenderer(s.shape, s.pixel_size_um, seed=self._seeds[p])
            else:
                renderer = SimulatorRenderer(s.shape, s.pixel_size_um, seed=self._seeds[p])
            mic = SimulatedMicroscope(
                SimulatedMicroscopeSettings(
                    shape=s.shape, pixel_size_um=s.pixel_size_um, z_limits_um=s.z_limits_um,
                    start_z_um=float(self._offsets_um[p]), rerender_every_s=s.scene_update_s,
                    # A visit images one or two defocus values: render just the two planes
                    # around each (a block of neighbours would be wasted on a new scene).
                    render_block=0,
                ),
                drift=self._drifts[p], renderer=renderer, clock=self.clock, seed=self._seeds[p],
            )
            self._microscopes[p] = mic
        return mic

    # -- frames (called by the camera device) -----------------------------------

    def render_frame(self, exposure_ms: float) -> tuple[np.ndarray, dict[str, str]]:
        """Render the frame the camera sees now; record it and advance the clock."""
        with self._lock:
            if self._closed:
                raise CameraError(f"{devices.CAMERA_LABEL}: the simulated scope is closed")
            if self.faults.take("camera_errors"):
                raise CameraError(f"{devices.CAMERA_LABEL}: simulated camera fault")
            t = self.clock.now()
            x, y = self._devices["xy"].xy_um
            z = float(self._devices["focus"].z_um)
            channel = devices.CHANNELS[self._devices["channel"].state]
            p = self.position_at(x, y)
            fault = ("blank" if self.faults.take("blank_frames") else
                     "bimodal" if self.faults.take("bimodal_frames") else None)
            defocus = None if p is None else self.focus_z_um(p, t) - z
            if fault == "blank":
                image = self._frames.blank()
            elif p is None or defocus is None:
                image = self._frames.empty(channel, exposure_ms)
            else:
                image = self._frames.scene(self._microscope(p), defocus, channel, exposure_ms,
                                           bimodal=fault == "bimodal")
            self.clock.advance(exposure_ms / 1000.0)
            self.snaps += 1
            self.last_snap = SnapRecord(t, x, y, z, channel, p, defocus, exposure_ms, fault)
        meta = {"zfocus_sim_time_s": f"{t:.3f}", "zfocus_sim_position": str(p),
                "zfocus_sim_true_defocus_um": "nan" if defocus is None else f"{defocus:.4f}"}
        return image, meta

    def before_focus_move(self, z_um: float) -> None:
        """Stage-fault hook, called by the focus stage before it moves."""
        if self.faults.take("stage_errors"):
            raise StageError(f"{devices.FOCUS_LABEL}: simulated stage fault (move to {z_um} um)")

    # -- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        """Unload the devices and release the core (idempotent).

        Afterwards ``scope.core`` raises; drop every other reference to the core too (a
        core whose devices were unloaded aborts the interpreter at exit if still alive).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            core, self._core = self._core, None
            devices.release_devices(core, self._devices)
            self._devices = {}
            for mic in self._microscopes:
                if mic is not None:
                    mic.close()

    def __enter__(self) -> SimulatedScope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- simulated time for MDA runs -----------------------------------------------------


def simulated_time_events(scope: SimulatedScope, events: Iterable[Any]) -> Iterator[Any]:
    """Yield ``events`` on the scope's clock: each one starts when it is due, at no wait.

    Before yielding an event with a ``min_start_time``, advance ``scope.clock`` to the
    event timer's start plus that time (the timer starts at the first event and restarts
    at each event with ``reset_event_timer``, as in the pymmcore-plus runner), and yield a
    copy with ``min_start_time=None`` so the runner does not sleep.
    """
    origin: float | None = None
    for event in events:
        now = scope.clock.now()
        if origin is None or event.reset_event_timer:
            origin = now
        if event.min_start_time is not None:
            due = origin + float(event.min_start_time)
            if due > now:
                scope.clock.advance(due - now)
            event = event.model_copy(update={"min_start_time": None})
        yield event


@contextlib.contextmanager
def simulated_waits(scope: SimulatedScope, engine: Any | None = None) -> Iterator[Any]:
    """Within the block, MDA runs of ``engine`` wait on ``scope.clock``, not in real time.

    Wraps ``engine.event_iterator`` (default: the engine registered on ``scope.core``) with
    :func:`simulated_time_events`, and restores it on exit. ``core.mda.run(sequence)``
    keeps passing the real ``MDASequence`` to ``setup_sequence``. Run the acquisition to
    its end inside the block (``core.mda.run`` blocks; wait for ``core.run_mda``'s thread).

    Yields
    ------
    The engine whose iterator is wrapped.
    """
    engine = engine if engine is not None else scope.core.mda.engine
    if engine is None:
        raise ZFocusError("simulated scope: no MDA engine is registered on its core")
    saved = vars(engine).get("event_iterator")  # an instance override, if any
    inner = getattr(engine, "event_iterator", iter)

    def event_iterator(events: Iterable[Any]) -> Iterator[Any]:
        return simulated_time_events(scope, inner(events))

    engine.event_iterator = event_iterator  # an instance attribute shadows the method
    try:
        yield engine
    finally:
        if saved is None:
            del engine.event_iterator
        else:
            engine.event_iterator = saved
