"""Live autofocus (no Qt): microscopes, the focus controller and headless sessions.

``MMCoreMicroscope`` and ``make_simulated_mmcore`` live in :mod:`.mmcore` and need the
optional ``pymmcore-plus``; everything else here needs only numpy (and the simulator).
"""

from __future__ import annotations

from napari_zfocus.live.controller import ControllerSettings, Decision, FocusController
from napari_zfocus.live.drift import DriftSettings, ThermalDrift
from napari_zfocus.live.headless import SessionResult, run_simulated_session
from napari_zfocus.live.microscope import (
    CameraError,
    Frame,
    Microscope,
    MicroscopeError,
    StageError,
    stream_frames,
)
from napari_zfocus.live.scenes import PatternRenderer, SimulatorRenderer
from napari_zfocus.live.simulated_microscope import (
    ScaledClock,
    SimClock,
    SimulatedMicroscope,
    SimulatedMicroscopeSettings,
)

__all__ = [
    "CameraError",
    "ControllerSettings",
    "Decision",
    "DriftSettings",
    "FocusController",
    "Frame",
    "Microscope",
    "MicroscopeError",
    "PatternRenderer",
    "ScaledClock",
    "SessionResult",
    "SimClock",
    "SimulatedMicroscope",
    "SimulatedMicroscopeSettings",
    "SimulatorRenderer",
    "StageError",
    "ThermalDrift",
    "run_simulated_session",
    "stream_frames",
]
