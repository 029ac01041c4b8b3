"""Real microscopes through pymmcore-plus (optional), and a simulated core without hardware.

:class:`MMCoreMicroscope` adapts a ``CMMCorePlus`` to the
:class:`~napari_zfocus.live.microscope.Microscope` protocol using the core's current
camera and focus device. :func:`make_simulated_mmcore` builds a ``UniMMCore`` with pure-Python
devices (a camera whose frames come from the simulated microscope, and a focus stage), so
the whole Micro-Manager path can be tried and tested with no Micro-Manager install.

pymmcore-plus is an optional extra (``pip install napari-zfocus[micromanager]``); it is
imported only when one of these is used.

Known traps of pymmcore-plus 0.18 handled here (see the project's ENVIRONMENT notes):
``UniMMCore`` needs ``mm_path`` pointing at an existing folder; a Python camera cannot query
the core, so it holds the stage directly; a Python stage must emit
``stagePositionChanged`` itself; ``setProperty("Core", "Focus", ...)`` must be routed to
``setFocusDevice`` for Python devices; with no shutter, auto-shutter is switched off; the
camera sleeps for its exposure so continuous acquisition does not busy-loop. A core whose
devices were unloaded must be dropped (``del core``) before the interpreter exits, or the
C++ core aborts at shutdown.
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.microscope import (
    CameraError,
    Frame,
    StageError,
    check_z_target,
)

CAMERA_LABEL = "ZFocusSimCamera"
STAGE_LABEL = "ZFocusSimZ"
PIXEL_CONFIG = "zfocus-sim"


def _require_pymmcore() -> Any:
    try:
        import pymmcore_plus
    except ImportError as exc:
        raise ZFocusError(
            "pymmcore-plus is not installed: pip install 'napari-zfocus[micromanager]'"
        ) from exc
    return pymmcore_plus


def load_mmcore(config: str | Path) -> Any:
    """A ``CMMCorePlus`` with the Micro-Manager configuration ``config`` loaded.

    pymmcore-plus logs in colour on stderr (no Micro-Manager installation found...) while
    a core is made and loaded; its logger is silenced meanwhile (and restored after), so
    a failure is the one line raised here.

    Raises
    ------
    ZFocusError
        The configuration cannot be loaded (naming the missing Micro-Manager installation
        when there is none), or it loads no device: not a Micro-Manager configuration
        (Micro-Manager skips the lines it does not understand, so any text file "loads").
    """
    import logging

    pymmcore_plus = _require_pymmcore()
    path = Path(config)
    log = logging.getLogger("pymmcore-plus")
    was_disabled = log.disabled
    log.disabled = True
    try:
        core = pymmcore_plus.CMMCorePlus()
        try:
            core.loadSystemConfiguration(str(path))
        except Exception as exc:
            hint = ("" if pymmcore_plus.find_micromanager() else
                    "; no Micro-Manager installation was found (run 'mmcore install')")
            raise ZFocusError(
                f"{path}: cannot load this Micro-Manager configuration ({exc}){hint}"
            ) from exc
        devices = [d for d in core.getLoadedDevices() if d != "Core"]
    finally:
        log.disabled = was_disabled
    if not devices:
        raise ZFocusError(f"{path}: not a valid Micro-Manager configuration file "
                          "(it defines no device)")
    return core


class MMCoreMicroscope:
    """A :class:`~napari_zfocus.live.microscope.Microscope` over a pymmcore-plus core.

    Parameters
    ----------
    core
        A ``CMMCorePlus`` (or ``UniMMCore``) with a camera and a focus device set.
    pixel_size_um
        Pixel size; default the core's calibration (``getPixelSizeUm()``).
    z_limits_um
        Allowed focus range; default +/-100 um around the position at construction (a
        safety net: the controller never drives the objective further than that).
    timeout_s
        How long :meth:`snap` waits for a frame of a running sequence.
    """

    def __init__(
        self,
        core: Any,
        *,
        pixel_size_um: float | None = None,
        z_limits_um: tuple[float, float] | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.core = core
        self.camera = core.getCameraDevice()
        self.focus = core.getFocusDevice()
        if not self.camera:
            raise ZFocusError("Micro-Manager core: no camera device is set")
        if not self.focus:
            raise ZFocusError("Micro-Manager core: no focus device is set")
        px = float(pixel_size_um) if pixel_size_um is not None else float(core.getPixelSizeUm())
        if not (px > 0 and math.isfinite(px)):
            raise ZFocusError(
                "Micro-Manager core: no pixel size calibration; define one or pass pixel_size_um"
            )
        self.pixel_size_um = px
        if z_limits_um is None:
            z0 = self.get_z()
            z_limits_um = (z0 - 100.0, z0 + 100.0)
        if not z_limits_um[0] < z_limits_um[1]:
            raise ZFocusError(f"focus limits must be increasing, got {z_limits_um}")
        self.z_limits_um = (float(z_limits_um[0]), float(z_limits_um[1]))
        self.timeout_s = float(timeout_s)
        self._t0 = time.monotonic()
        self._streaming = False

    def _frame(self, image: np.ndarray) -> Frame:
        return Frame(np.asarray(image), time.monotonic() - self._t0, self.get_z())

    def snap(self) -> Frame:
        """One frame: the newest of a running sequence, or ``snapImage`` + ``getImage``."""
        try:
            if self.core.isSequenceRunning():
                return self._frame(self._pop())
            self.core.snapImage()
            return self._frame(self.core.getImage())
        except CameraError:
            raise
        except Exception as exc:
            raise CameraError(f"camera {self.camera}: {exc}") from exc

    def _pop(self) -> np.ndarray:
        deadline = time.monotonic() + self.timeout_s
        while self.core.getRemainingImageCount() == 0:
            if time.monotonic() > deadline:
                raise CameraError(f"camera {self.camera}: no frame within {self.timeout_s:g} s")
            time.sleep(0.001)
        return self.core.popNextImage()

    def stream(self, n: int | None = None) -> Iterator[Frame]:
        """Continuous acquisition: yield ``n`` frames (endless if None), then stop it."""
        try:
            self.core.startContinuousSequenceAcquisition(0)
        except Exception as exc:
            raise CameraError(f"camera {self.camera}: cannot start streaming: {exc}") from exc
        self._streaming = True
        try:
            count = 0
            while n is None or count < n:
                try:
                    yield self._frame(self._pop())
                except CameraError:
                    raise
                except Exception as exc:
                    raise CameraError(f"camera {self.camera}: {exc}") from exc
                count += 1
        finally:
            self._stop_stream()

    def _stop_stream(self) -> None:
        if self._streaming:
            self._streaming = False
            if self.core.isSequenceRunning():
                self.core.stopSequenceAcquisition()

    def get_z(self) -> float:
        """Focus position, um."""
        try:
            return float(self.core.getPosition(self.focus))
        except Exception as exc:
            raise StageError(f"focus {self.focus}: cannot read position: {exc}") from exc

    def move_z_to(self, z_um: float) -> None:
        """Absolute focus move (within ``z_limits_um``)."""
        z = check_z_target(
            z_um, self.z_limits_um, f"focus {self.focus}", current_um=self._z_or_none()
        )
        try:
            self.core.setPosition(self.focus, z)
        except Exception as exc:
            raise StageError(f"focus {self.focus}: move to {z:.3f} um failed: {exc}") from exc

    def _z_or_none(self) -> float | None:
        try:
            return self.get_z()
        except StageError:
            return None

    def move_z_by(self, dz_um: float) -> None:
        """Relative focus move."""
        self.move_z_to(self.get_z() + float(dz_um))

    def is_busy(self) -> bool:
        """``deviceBusy`` of the focus device."""
        try:
            return bool(self.core.deviceBusy(self.focus))
        except Exception as exc:
            raise StageError(f"focus {self.focus}: busy query failed: {exc}") from exc

    def close(self) -> None:
        """Stop a sequence this object started; the core and its devices stay the user's."""
        self._stop_stream()


@functools.cache
def _device_classes() -> tuple[type, type, type]:
    """Python device classes (defined lazily: pymmcore-plus is optional)."""
    _require_pymmcore()
    return _stage_class(), _camera_class(), _core_class()


def _stage_class() -> type:
    from pymmcore_plus.experimental.unicore import StageDevice

    class SimulatedFocusStage(StageDevice):
        """Focus drive of the simulated core; busy for ``settle_s`` after a move."""

        def __init__(self, limits: tuple[float, float], settle_s: float = 0.0) -> None:
            super().__init__()
            self.z_um = 0.0
            self.limits = limits
            self.settle_s = settle_s
            self._busy_until = 0.0

        def set_position_um(self, val: float) -> None:
            lo, hi = self.limits
            if not lo <= val <= hi:
                raise ValueError(f"position {val} um outside [{lo}, {hi}] um")
            self.z_um = float(val)
            self._busy_until = time.monotonic() + self.settle_s
            # Python stages must announce moves themselves (widgets listen for this).
            self.core.events.stagePositionChanged.emit(self.get_label(), self.z_um)

        def get_position_um(self) -> float:
            return self.z_um

        def busy(self) -> bool:
            return time.monotonic() < self._busy_until

        def home(self) -> None:
            self.set_position_um(0.0)

        def stop(self) -> None:
            self._busy_until = 0.0

        def set_origin(self) -> None:
            self.z_um = 0.0

    return SimulatedFocusStage


def _camera_class() -> type:
    from pymmcore_plus.experimental.unicore import SimpleCameraDevice

    class SimulatedCamera(SimpleCameraDevice):
        """Camera whose frames come from a SimulatedMicroscope at the stage's defocus."""

        def __init__(self, simulated: Any, stage: Any, exposure_ms: float) -> None:
            super().__init__()
            self.simulated = simulated
            self.stage = stage  # a Python device cannot ask the core where the stage is
            self._exposure_ms = float(exposure_ms)

        def sensor_shape(self) -> tuple[int, int]:
            return tuple(self.simulated.settings.shape)

        def dtype(self) -> Any:
            return np.uint16

        def get_exposure(self) -> float:
            return self._exposure_ms

        def set_exposure(self, exposure: float) -> None:
            self._exposure_ms = float(exposure)

        def snap(self, buffer: np.ndarray) -> dict:
            t0 = time.monotonic()
            defocus = self.simulated.sample_z_um() - self.stage.z_um
            buffer[:] = self.simulated.image_at(defocus)
            # Sleep out the exposure, or continuous acquisition busy-loops a core.
            time.sleep(max(0.0, self._exposure_ms / 1000.0 - (time.monotonic() - t0)))
            return {"true_defocus_um": f"{defocus:.4f}"}

    return SimulatedCamera


def _core_class() -> type:
    from pymmcore_plus.experimental.unicore import UniMMCore

    class SimulatedUniMMCore(UniMMCore):
        """UniMMCore that routes Core/Focus and Core/Camera for Python devices."""

        def setProperty(self, label: str, propName: str, propValue: Any) -> None:  # noqa: N802, N803 - pymmcore's API
            if label == "Core" and propName == "Focus":
                return self.setFocusDevice(str(propValue))
            if label == "Core" and propName == "Camera":
                return self.setCameraDevice(str(propValue))
            return super().setProperty(label, propName, propValue)

    return SimulatedUniMMCore


def new_simulated_core() -> Any:
    """An empty ``UniMMCore`` that routes Core/Focus and Core/Camera to Python devices.

    Made with ``mm_path`` set to an existing folder, so it logs no error about missing
    Micro-Manager adapters. Load Python devices into it with ``loadPyDevice``.
    """
    return _device_classes()[2](mm_path=tempfile.gettempdir())


def simulated_focus_stage_class() -> type:
    """The focus stage class of the simulated core, ``cls(limits, settle_s)``.

    It refuses targets outside ``limits`` (or NaN) with ``ValueError`` and emits
    ``stagePositionChanged`` on every move.
    """
    return _device_classes()[0]


def make_simulated_mmcore(
    simulated: Any | None = None,
    *,
    exposure_ms: float = 10.0,
    z_limits_um: tuple[float, float] = (-200.0, 200.0),
    settle_s: float = 0.0,
    seed: int = 0,
) -> Any:
    """A ``UniMMCore`` with a simulated camera and focus stage; no Micro-Manager needed.

    Parameters
    ----------
    simulated
        The :class:`~napari_zfocus.live.simulated_microscope.SimulatedMicroscope` that renders the
        frames (its clock drives the drift; its own stage is not used). Default: one on
        real time (:class:`~napari_zfocus.live.simulated_microscope.ScaledClock`).
    exposure_ms
        Camera exposure; snaps take at least this long.
    z_limits_um
        Range the simulated stage accepts.
    settle_s
        Time the stage reports busy after each move.
    seed
        Seed of the default simulated microscope.

    Returns
    -------
    UniMMCore
        Camera ``ZFocusSimCamera`` and focus ``ZFocusSimZ`` set as current devices, pixel
        size calibrated, auto-shutter off. Tear down with ``core.unloadAllDevices()`` and
        then drop every reference to the core.
    """
    stage_cls, camera_cls, _ = _device_classes()
    if simulated is None:
        from napari_zfocus.live.simulated_microscope import ScaledClock, SimulatedMicroscope

        simulated = SimulatedMicroscope(clock=ScaledClock(1.0), seed=seed)
    core = new_simulated_core()
    stage = stage_cls(z_limits_um, settle_s)
    camera = camera_cls(simulated, stage, exposure_ms)
    core.loadPyDevice(STAGE_LABEL, stage)
    core.loadPyDevice(CAMERA_LABEL, camera)
    core.initializeAllDevices()
    core.setFocusDevice(STAGE_LABEL)
    core.setCameraDevice(CAMERA_LABEL)
    core.setAutoShutter(False)  # there is no shutter device
    core.definePixelSizeConfig(PIXEL_CONFIG)
    core.setPixelSizeUm(PIXEL_CONFIG, float(simulated.pixel_size_um))
    core.setPixelSizeConfig(PIXEL_CONFIG)
    return core
