"""The simulated multi-position scope on UniMMCore: plate, drift, channels, faults, MDA."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

pytest.importorskip("pymmcore_plus")
useq = pytest.importorskip("useq")

from napari_zfocus.acquisition.simulated_scope import (
    BLANK_ADU,
    SimulatedScope,
    SimulatedScopeSettings,
    simulated_time_events,
    simulated_waits,
)
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.microscope import CameraError, StageError
from napari_zfocus.live.simulated_microscope import SimClock

SHAPE = (64, 64)


def small(**kwargs) -> SimulatedScopeSettings:
    kwargs.setdefault("renderer", "pattern")
    kwargs.setdefault("shape", SHAPE)
    return SimulatedScopeSettings(**kwargs)


@pytest.fixture
def scope():
    s = SimulatedScope(small())
    yield s
    s.close()
    gc.collect()


def snap(core) -> np.ndarray:
    core.snapImage()
    return np.array(core.getImage())


def test_positions_differ_and_fields_are_found(scope):
    positions = scope.position_list()
    assert [p.name for p in positions] == ["p0", "p1", "p2", "p3"]
    zs = [p.z for p in positions]
    assert len(set(np.round(zs, 3))) == 4 and all(abs(z) <= 20.0 for z in zs)
    assert zs == pytest.approx([scope.focus_z_um(i, 0.0) for i in range(4)])
    xy = {(p.x, p.y) for p in positions}
    assert xy == {(0.0, 0.0), (1500.0, 0.0), (0.0, 1500.0), (1500.0, 1500.0)}
    half_field = SHAPE[0] * 0.24 / 2
    for i, p in enumerate(positions):
        assert scope.position_at(p.x, p.y) == i
        assert scope.position_at(p.x + 0.9 * half_field, p.y - 0.9 * half_field) == i
        assert scope.position_at(p.x + 1.1 * half_field, p.y) is None
    assert scope.position_at(750.0, 750.0) is None


def test_focus_drifts_by_the_shared_drift_plus_small_own_wander():
    with SimulatedScope(small(drift_um=40.0, duration_h=24.0, wander_um=0.5)) as s:
        changes = np.array([s.focus_z_um(p, 24 * 3600.0) - s.focus_z_um(p, 0.0)
                            for p in range(4)])
        assert np.all(np.abs(changes - 40.0) < 8.0)  # plus the shared wander and jumps
        # Positions share the thermal drift: they differ only by their own wander.
        assert np.ptp(changes) < 4.0 and np.ptp(changes) > 0.0
        half_day = np.array([s.focus_z_um(p, 12 * 3600.0) - s.focus_z_um(p, 0.0)
                             for p in range(4)])
        assert np.all((half_day > 10.0) & (half_day < 30.0))
    with SimulatedScope(small(drift_um=0.0, wander_um=0.0)) as still:
        assert still.focus_z_um(1, 3600.0) - still.focus_z_um(1, 0.0) == pytest.approx(
            still.focus_z_um(2, 3600.0) - still.focus_z_um(2, 0.0))  # shared jumps only


def test_channels_switch_the_image_exposure_and_clock(scope):
    core = scope.core
    assert core.getChannelGroup() == "Channel"
    assert core.getCurrentConfig("Channel") == "BF" and core.getExposure() == 10.0
    assert core.getPixelSizeUm() == pytest.approx(0.24) and not core.getAutoShutter()
    bf = snap(core)
    assert scope.last_snap.channel == "BF" and scope.clock.now() == pytest.approx(0.010)
    core.setConfig("Channel", "FL")
    assert core.getCurrentConfig("Channel") == "FL" and core.getExposure() == 50.0
    fl = snap(core)
    rec = scope.last_snap
    assert rec.channel == "FL" and rec.exposure_ms == 50.0 and rec.p_index == 0
    assert scope.clock.now() == pytest.approx(0.060) and scope.snaps == 2
    assert np.median(fl) < 0.3 * np.median(bf)  # dark background, bright cells
    assert np.percentile(fl, 99.9) > 3 * np.median(fl)


def test_fluorescence_blurs_with_defocus():
    with SimulatedScope(small(pixel_size_um=0.96)) as s:  # a 61 um field: separate cells
        core = s.core
        core.setConfig("Channel", "FL")
        z0 = s.focus_z_um(0)
        peaks, means = [], []
        for defocus in (0.0, 4.0, 10.0):
            core.setPosition(z0 - defocus)
            image = snap(core).astype(float)
            assert s.last_snap.true_defocus_um == pytest.approx(defocus, abs=0.01)
            peaks.append(np.percentile(image, 99.5))
            means.append(image.mean())
        assert peaks[0] > peaks[1] > peaks[2]  # dimmer and wider with |defocus|
        assert np.ptp(means) < 0.05 * means[0]  # the light is kept
        # The cells grow: the fluorescence follows the scene updates.
        s.clock.advance(6 * 3600.0)
        core.setPosition(s.focus_z_um(0))
        grown = snap(core).astype(float)
        assert grown.mean() > 1.2 * means[0]
        del core


def test_true_defocus_follows_the_stage_and_the_xy_position(scope):
    core = scope.core
    positions = scope.position_list()
    core.setXYPosition(positions[2].x, positions[2].y)
    core.setPosition(positions[2].z + 1.5)
    in_field = snap(core)
    rec = scope.last_snap
    assert rec.p_index == 2 and rec.stage_z_um == pytest.approx(positions[2].z + 1.5)
    # Sample z minus stage z: the stage is 1.5 um above the sample.
    assert rec.true_defocus_um == pytest.approx(
        scope.focus_z_um(2, rec.time_s) - rec.stage_z_um)
    assert rec.true_defocus_um == pytest.approx(-1.5, abs=0.01)
    core.setXYPosition(750.0, 0.0)
    empty = snap(core)
    assert scope.last_snap.p_index is None and scope.last_snap.true_defocus_um is None
    assert empty.mean() < in_field.mean()  # dim
    assert empty.std() < 0.5 * in_field.std()  # nearly uniform


def test_stages_refuse_unsafe_targets_and_announce_moves(scope):
    core = scope.core
    seen = []
    core.events.stagePositionChanged.connect(lambda label, z: seen.append((label, z)))
    core.events.XYStagePositionChanged.connect(lambda label, x, y: seen.append((label, x, y)))
    core.setPosition(12.5)
    core.setXYPosition(10.0, -5.0)
    assert seen == [("ZFocusSimZ", 12.5), ("ZFocusSimXY", 10.0, -5.0)]
    for bad in (1000.5, -1e6, float("nan"), float("inf")):
        with pytest.raises(Exception, match="outside"):
            core.setPosition(bad)
    with pytest.raises(Exception, match="not finite"):
        core.setXYPosition(float("nan"), 0.0)
    assert core.getPosition() == 12.5 and core.getXYPosition() == (10.0, -5.0)
    core.setProperty("Core", "Focus", "ZFocusSimZ")  # routed for Python devices


def test_camera_and_blank_faults_fire_exactly_as_requested(scope):
    core = scope.core
    scope.faults.camera_errors = 2
    for _ in range(2):
        with pytest.raises(CameraError, match="camera fault"):
            core.snapImage()
    assert scope.snaps == 0 and scope.faults.camera_errors == 0
    snap(core)
    assert scope.snaps == 1
    scope.faults.blank_frames = 2
    frames = [snap(core) for _ in range(4)]
    assert [np.all(f == BLANK_ADU) for f in frames] == [True, True, False, False]
    assert [scope.snaps, scope.faults.blank_frames] == [5, 0]


def test_bimodal_and_stage_faults_fire_exactly_as_requested(scope):
    core = scope.core
    scope.faults.bimodal_frames = 1
    faults = []
    for _ in range(3):
        snap(core)
        faults.append(scope.last_snap.fault)
    assert faults == ["bimodal", None, None]
    z = core.getPosition()
    scope.faults.stage_errors = 2
    for _ in range(2):
        with pytest.raises(StageError, match="stage fault"):
            core.setPosition(z + 1.0)
    assert core.getPosition() == z  # a refused move does not move
    core.setPosition(z + 1.0)
    assert core.getPosition() == pytest.approx(z + 1.0)


def test_bimodal_frame_mixes_a_far_plane():
    with SimulatedScope(small(seed=3)) as s:
        core = s.core
        plain = np.mean([snap(core).astype(float) for _ in range(4)], axis=0)
        s.faults.bimodal_frames = 4
        mixed = np.mean([snap(core).astype(float) for _ in range(4)], axis=0)
        again = np.mean([snap(core).astype(float) for _ in range(4)], axis=0)
        assert np.abs(mixed - plain).mean() > 3 * np.abs(again - plain).mean()


def test_close_is_idempotent_and_a_closed_scope_refuses_to_snap():
    s = SimulatedScope(small())
    core = s.core
    s.close()
    s.close()
    with pytest.raises(ZFocusError, match="closed"):
        _ = s.core
    with pytest.raises(RuntimeError):
        core.snapImage()
    assert core.getLoadedDevices() == ("Core",)
    with pytest.raises(CameraError, match="closed"):
        s.render_frame(10.0)
    del core  # a core without devices must not outlive the interpreter
    gc.collect()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("positions", 0), ("positions", 2.5), ("drift_um", float("nan")),
        ("duration_h", 0.0), ("wander_um", -1.0), ("offset_range_um", -1.0),
        ("spacing_um", 5.0), ("shape", (4, 64)), ("pixel_size_um", 0.0),
        ("z_limits_um", (10.0, -10.0)), ("z_limits_um", (-5.0, 5.0)),
        ("bf_exposure_ms", 0.0), ("fl_exposure_ms", -1.0), ("renderer", "raytracer"),
        ("seed", -1), ("scene_update_s", 0.0),
    ],
)
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ZFocusError, match=rf"^{field}"):
        SimulatedScope(small(**{field: value}))


def test_simulated_time_events_advance_the_clock_instead_of_waiting():
    clock = SimClock(100.0)
    with SimulatedScope(small(positions=1), clock=clock) as s:
        events = [useq.MDAEvent(min_start_time=0), useq.MDAEvent(min_start_time=600),
                  useq.MDAEvent(min_start_time=5, reset_event_timer=True),
                  useq.MDAEvent(min_start_time=1), useq.MDAEvent()]
        starts = []
        for event in simulated_time_events(s, events):
            assert event.min_start_time is None
            starts.append(clock.now())
            clock.advance(2.0)  # the frame takes time
        # The timer restarts at the third event: it is due 5 s after it was reached.
        assert starts == pytest.approx([100.0, 700.0, 707.0, 709.0, 711.0])


def test_mda_with_the_default_engine_runs_on_simulated_time(scope):
    core = scope.core
    sequence = useq.MDASequence(
        stage_positions=scope.position_list(),
        channels=[{"config": "BF", "group": "Channel"}, {"config": "FL", "group": "Channel"}],
        time_plan={"interval": 600, "loops": 3}, z_plan={"range": 4, "step": 2},
    )
    frames, started = [], []
    core.mda.events.sequenceStarted.connect(lambda seq, meta: started.append(seq))
    core.mda.events.frameReady.connect(
        lambda img, event, meta: frames.append((event, scope.last_snap, img.shape)))
    engine = core.mda.engine
    t0 = time.monotonic()
    with simulated_waits(scope) as wrapped:
        assert wrapped is engine
        core.mda.run(sequence)
    assert time.monotonic() - t0 < 60.0  # not 2 x 600 s of waiting
    assert "event_iterator" not in vars(engine)  # the engine is restored
    assert started == [sequence]  # setup_sequence saw the real MDASequence
    assert len(frames) == 3 * 4 * 2 * 3
    assert scope.snaps == len(frames) and scope.clock.now() >= 1200.0
    for event, rec, shape in frames:
        assert shape == SHAPE
        assert rec.p_index == event.index["p"] and rec.channel == event.channel.config
        assert rec.stage_z_um == pytest.approx(event.z_pos)
        assert rec.time_s >= 600.0 * event.index["t"]
        p = rec.p_index
        assert rec.true_defocus_um == pytest.approx(scope.focus_z_um(p, rec.time_s) - event.z_pos)
        if event.index["t"] == 0 and event.index["z"] == 1:  # the middle slice, t ~ 0
            assert event.z_pos == pytest.approx(scope.position_list()[p].z)
            assert abs(rec.true_defocus_um) < 0.05


def test_live_mode_sleeps_out_each_exposure(scope):
    core = scope.core
    core.setExposure(20.0)
    t0 = time.monotonic()
    core.startSequenceAcquisition(3, 0, True)
    deadline = time.monotonic() + 30.0
    while core.isSequenceRunning() and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = time.monotonic() - t0
    assert core.getRemainingImageCount() == 3 and scope.snaps == 3
    assert elapsed >= 0.055  # three 20 ms exposures, not a busy loop
