"""MMCoreMicroscope over a UniMMCore with Python devices (no Micro-Manager install)."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

pytest.importorskip("pymmcore_plus")

from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller import ControllerSettings, FocusController
from napari_zfocus.live.drift import DriftSettings, ThermalDrift
from napari_zfocus.live.microscope import (
    CameraError,
    Microscope,
    StageError,
    stream_frames,
)
from napari_zfocus.live.mmcore import (
    CAMERA_LABEL,
    STAGE_LABEL,
    MMCoreMicroscope,
    make_simulated_mmcore,
)
from napari_zfocus.live.scenes import PatternRenderer
from napari_zfocus.live.simulated_microscope import (
    SimClock,
    SimulatedMicroscope,
    SimulatedMicroscopeSettings,
)

SHAPE = (32, 40)


@pytest.fixture
def sim():
    drift = ThermalDrift(DriftSettings(total_drift_um=0, wander_um=0, jump_rate_per_h=0))
    return SimulatedMicroscope(
        SimulatedMicroscopeSettings(shape=SHAPE), drift=drift,
        renderer=PatternRenderer(SHAPE), clock=SimClock(),
    )


@pytest.fixture
def core(sim):
    threads_before = {t.ident for t in threading.enumerate()}
    core = make_simulated_mmcore(sim, exposure_ms=1.0, z_limits_um=(-50.0, 50.0))
    yield core
    if core.isSequenceRunning():
        core.stopSequenceAcquisition()
    core.unloadAllDevices()
    assert core.getLoadedDevices() == ("Core",)
    # A core with unloaded devices must not outlive the interpreter (C++ abort at exit).
    del core
    gc.collect()
    leftover = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
    assert leftover == []


def test_simulated_core_devices(core):
    assert core.getCameraDevice() == CAMERA_LABEL and core.getFocusDevice() == STAGE_LABEL
    assert core.getPixelSizeUm() == pytest.approx(0.24)
    events = []
    core.events.stagePositionChanged.connect(lambda label, z: events.append((label, z)))
    core.setPosition(2.5)
    assert core.getPosition() == pytest.approx(2.5)
    assert events == [(STAGE_LABEL, 2.5)]
    core.setProperty("Core", "Focus", STAGE_LABEL)  # routed, does not raise


def test_microscope_snaps_and_moves(core, sim):
    mic = MMCoreMicroscope(core)
    assert isinstance(mic, Microscope)
    assert mic.pixel_size_um == pytest.approx(0.24)
    assert mic.z_limits_um == (-100.0, 100.0)  # +/-100 um around the start
    frame = mic.snap()
    assert frame.image.shape == SHAPE and frame.image.dtype == np.uint16
    mic.move_z_to(3.0)
    assert mic.get_z() == pytest.approx(3.0) and frame.stage_z_um == 0.0
    mic.move_z_by(-1.0)
    assert core.getPosition() == pytest.approx(2.0)
    with pytest.raises(StageError, match="outside the limits"):
        mic.move_z_to(150.0)
    with pytest.raises(StageError, match="failed"):  # the stage's own range is +/-50
        mic.move_z_to(60.0)
    assert not mic.is_busy()


def test_stream_uses_sequence_acquisition_and_stops(core):
    mic = MMCoreMicroscope(core, timeout_s=2.0)
    frames = list(stream_frames(mic, 5))
    assert len(frames) == 5 and all(f.image.shape == SHAPE for f in frames)
    assert not core.isSequenceRunning()
    mic.close()


def test_controller_refocuses_through_mmcore(core, sim):
    class Oracle:
        def predict(self, image, pixel_size_um):
            from types import SimpleNamespace

            return SimpleNamespace(z_um=sim.sample_z_um() - core.getPosition(), confidence=0.9,
                                   bimodal=False)

    core.setPosition(-2.0)  # 2 um below focus: the sample is above the focal plane
    mic = MMCoreMicroscope(core)
    ctrl = FocusController(Oracle(), mic, ControllerSettings())
    ctrl.lock(0.0)
    d = ctrl.step()
    assert d.action == "move" and core.getPosition() == pytest.approx(0.0)


def test_camera_failure_is_a_camera_error(core, monkeypatch):
    mic = MMCoreMicroscope(core)

    def broken():
        raise RuntimeError("camera timeout")

    monkeypatch.setattr(core, "snapImage", broken)
    with pytest.raises(CameraError, match="camera timeout"):
        mic.snap()


def test_missing_calibration_or_devices(core):
    core.setPixelSizeUm("zfocus-sim", 0.0)
    with pytest.raises(ZFocusError, match="pixel size"):
        MMCoreMicroscope(core)
    assert MMCoreMicroscope(core, pixel_size_um=0.5).pixel_size_um == 0.5
