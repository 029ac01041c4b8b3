"""pymmcore-plus Python devices of the simulated multi-position microscope, and its core.

The devices are thin: every frame is rendered by the scope they were built for (an object
with the :class:`ScopeHooks` methods), which reads the stages and the channel directly
(a Python device cannot query the core). The classes are defined on first use because
pymmcore-plus is an optional dependency.

Devices (labels are the ones the engine and the CLI look for):

* ``ZFocusSimXY``: XY stage; refuses non-finite targets, emits ``XYStagePositionChanged``.
* ``ZFocusSimZ``: focus stage (the live simulated core's stage: refuses targets outside its
  limits or NaN, emits ``stagePositionChanged``) plus the scope's stage-fault hook.
* ``ZFocusSimChannel``: state device with the states ``BF`` and ``FL``.
* ``ZFocusSimCamera``: 16-bit camera; one snap advances simulated time only (no real sleep),
  while a sequence acquisition (live mode) sleeps out each exposure so it cannot busy-loop.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from napari_zfocus.live.mmcore import (
    CAMERA_LABEL,
    STAGE_LABEL,
    new_simulated_core,
    simulated_focus_stage_class,
)

XY_LABEL = "ZFocusSimXY"
FOCUS_LABEL = STAGE_LABEL  # "ZFocusSimZ"
CHANNEL_LABEL = "ZFocusSimChannel"
CHANNEL_GROUP = "Channel"
CHANNELS = ("BF", "FL")  # state 0 and state 1 of the channel device
PIXEL_CONFIG = "zfocus-sim-scope"


class ScopeHooks(Protocol):
    """What the devices ask of the scope they belong to."""

    def render_frame(self, exposure_ms: float) -> tuple[np.ndarray, dict[str, str]]:
        """The next camera frame (uint16, Y x X) and its metadata."""
        ...

    def before_focus_move(self, z_um: float) -> None:
        """Raise to refuse a focus move (stage faults)."""
        ...


@functools.cache
def _classes() -> dict[str, type]:
    """The Python device classes (pymmcore-plus imported here, on first use)."""
    from pymmcore_plus.experimental.unicore import (
        SimpleCameraDevice,
        StateDevice,
        XYStageDevice,
    )

    focus_base = simulated_focus_stage_class()

    class ScopeXYStage(XYStageDevice):
        """XY stage of the simulated scope (moves instantly)."""

        def __init__(self) -> None:
            super().__init__()
            self.xy_um = (0.0, 0.0)

        def set_position_um(self, x: float, y: float) -> None:
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"XY target ({x}, {y}) um is not finite")
            self.xy_um = (float(x), float(y))
            # Python stages announce their moves themselves (widgets listen for this).
            self.core.events.XYStagePositionChanged.emit(self.get_label(), *self.xy_um)

        def get_position_um(self) -> tuple[float, float]:
            return self.xy_um

        def home(self) -> None:
            self.set_position_um(0.0, 0.0)

        def stop(self) -> None:
            """Moves are instant: nothing to stop."""

        def set_origin_x(self) -> None:
            # The positions' fields are fixed in stage coordinates: no re-zeroing.
            raise RuntimeError(f"{XY_LABEL}: the simulated XY origin cannot be changed")

        def set_origin_y(self) -> None:
            raise RuntimeError(f"{XY_LABEL}: the simulated XY origin cannot be changed")

    class ScopeFocusStage(focus_base):  # type: ignore[misc, valid-type]
        """The simulated focus stage, with the scope's fault hook before every move."""

        def __init__(self, hooks: ScopeHooks, limits: tuple[float, float]) -> None:
            super().__init__(limits, 0.0)
            self.hooks: ScopeHooks | None = hooks

        def set_position_um(self, val: float) -> None:
            if self.hooks is not None:
                self.hooks.before_focus_move(val)
            super().set_position_um(val)

    class ScopeChannel(StateDevice):
        """Light path: state 0 bright field (``BF``), state 1 fluorescence (``FL``)."""

        def __init__(self) -> None:
            super().__init__(dict(enumerate(CHANNELS)))
            self.state = 0

        def get_state(self) -> int:
            return self.state

        def set_state(self, position: int) -> None:
            self.state = int(position)

    class ScopeCamera(SimpleCameraDevice):
        """Camera whose frames the scope renders; single snaps cost no real time."""

        def __init__(self, hooks: ScopeHooks, shape: tuple[int, int], exposure_ms: float):
            super().__init__()
            self.hooks: ScopeHooks | None = hooks
            self._shape = shape
            self._exposure_ms = float(exposure_ms)
            self._real_time = False

        def sensor_shape(self) -> tuple[int, int]:
            return self._shape

        def dtype(self) -> Any:
            return np.uint16

        def get_exposure(self) -> float:
            return self._exposure_ms

        def set_exposure(self, exposure: float) -> None:
            self._exposure_ms = float(exposure)

        def start_sequence(
            self, n: int | None, get_buffer: Callable[[Sequence[int], Any], np.ndarray]
        ) -> Iterator[Mapping]:
            # UniMMCore snaps through start_sequence(1, ...); anything longer is live mode.
            self._real_time = n != 1
            return super().start_sequence(n, get_buffer)

        def snap(self, buffer: np.ndarray) -> Mapping:
            if self.hooks is None:
                raise RuntimeError(f"{CAMERA_LABEL}: the simulated scope is closed")
            t0 = time.monotonic()
            image, meta = self.hooks.render_frame(self._exposure_ms)
            buffer[:] = image
            if self._real_time:
                time.sleep(max(0.0, self._exposure_ms / 1000.0 - (time.monotonic() - t0)))
            return meta

    return {"xy": ScopeXYStage, "focus": ScopeFocusStage, "channel": ScopeChannel,
            "camera": ScopeCamera}


def build_scope_core(
    hooks: ScopeHooks,
    *,
    shape: tuple[int, int],
    pixel_size_um: float,
    z_limits_um: tuple[float, float],
    exposures_ms: Mapping[str, float],
) -> tuple[Any, dict[str, Any]]:
    """A ``UniMMCore`` with the scope's four devices, ready for MDA.

    Parameters
    ----------
    hooks
        The scope: renders frames and may refuse focus moves.
    shape, pixel_size_um
        Camera frame and its calibration.
    z_limits_um
        Range the focus stage accepts.
    exposures_ms
        Exposure of each channel preset (``"BF"``, ``"FL"``).

    Returns
    -------
    core, devices
        The core (group ``Channel`` with presets ``BF``/``FL`` as its channel group, ``BF``
        set, pixel size calibrated, auto-shutter off) and the device objects by role
        (``"xy"``, ``"focus"``, ``"channel"``, ``"camera"``).
    """
    cls = _classes()
    devices = {
        "xy": cls["xy"](),
        "focus": cls["focus"](hooks, z_limits_um),
        "channel": cls["channel"](),
        "camera": cls["camera"](hooks, shape, exposures_ms[CHANNELS[0]]),
    }
    core = new_simulated_core()
    labels = {"xy": XY_LABEL, "focus": FOCUS_LABEL, "channel": CHANNEL_LABEL,
              "camera": CAMERA_LABEL}
    for role, device in devices.items():
        core.loadPyDevice(labels[role], device)
    core.initializeAllDevices()
    core.setXYStageDevice(XY_LABEL)
    core.setFocusDevice(FOCUS_LABEL)
    core.setCameraDevice(CAMERA_LABEL)
    core.setAutoShutter(False)  # there is no shutter device
    for name in CHANNELS:
        core.defineConfig(CHANNEL_GROUP, name, CHANNEL_LABEL, "Label", name)
        core.defineConfig(CHANNEL_GROUP, name, CAMERA_LABEL, "Exposure", exposures_ms[name])
    core.setChannelGroup(CHANNEL_GROUP)
    core.setConfig(CHANNEL_GROUP, CHANNELS[0])
    core.definePixelSizeConfig(PIXEL_CONFIG)
    core.setPixelSizeUm(PIXEL_CONFIG, float(pixel_size_um))
    core.setPixelSizeConfig(PIXEL_CONFIG)
    return core, devices


def release_devices(core: Any, devices: Mapping[str, Any]) -> None:
    """Unload every device of ``core`` and cut the devices' links back to the scope."""
    for device in devices.values():
        if hasattr(device, "hooks"):
            device.hooks = None
    core.unloadAllDevices()
