"""FocusController: dead-band, gain, clamping, limits, gating, busy, failures, log."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from _microscope_fakes import FakeMicroscope, FakePrediction, ScriptedPredictor

from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller import (
    DECISION_COLUMNS,
    ControllerSettings,
    FocusController,
)
from napari_zfocus.live.microscope import Microscope


def make(script, settings=None, truth=False, **mic_kwargs):
    mic = FakeMicroscope(**mic_kwargs)
    pred = ScriptedPredictor(script, mic if truth else None)
    return FocusController(pred, mic, settings or ControllerSettings()), mic, pred


def test_fake_microscope_satisfies_protocol():
    assert isinstance(FakeMicroscope(), Microscope)


def test_not_locked_only_logs():
    ctrl, mic, _ = make([3.0])
    d = ctrl.step()
    assert (d.action, d.reason) == ("hold", "not_locked")
    assert d.estimate_um == 3.0 and mic.moves == []


def test_dead_band_holds_and_outside_moves_by_error():
    ctrl, mic, _ = make([0.0, 0.4, -0.5, 0.8], ControllerSettings(dead_band_um=0.5))
    ctrl.lock(0.0)
    reasons = [ctrl.step().reason for _ in range(3)]
    assert reasons == ["in_dead_band"] * 3 and mic.moves == []
    d = ctrl.step()
    # Sample above the focal plane by 0.8 um: the focus moves UP by 0.8 um.
    assert d.action == "move" and d.reason == "moved"
    assert d.move_um == pytest.approx(0.8) and mic.z == pytest.approx(0.8)


def test_drives_estimate_minus_lock_to_zero():
    ctrl, mic, _ = make([2.0], ControllerSettings(dead_band_um=0.1), truth=True)
    mic.sample_z = 5.0  # true defocus 5; model has a +2 um bias
    ctrl.lock(2.0)  # locking on the biased estimate at focus
    for _ in range(4):
        ctrl.step()
    assert mic.z == pytest.approx(5.0)  # in true focus despite the bias
    assert ctrl.step().reason == "in_dead_band"


def test_gain_and_max_step_clamp():
    ctrl, mic, _ = make([10.0], ControllerSettings(gain=0.5, max_step_um=2.0))
    ctrl.lock(0.0)
    d = ctrl.step()
    assert d.reason == "moved_clamped" and d.move_um == pytest.approx(2.0)
    ctrl2, mic2, _ = make([3.0], ControllerSettings(gain=0.5, max_step_um=2.0))
    ctrl2.lock(0.0)
    assert ctrl2.step().move_um == pytest.approx(1.5)


def test_never_steps_beyond_max_step_under_random_estimates():
    rng = np.random.default_rng(1)
    script = list(rng.normal(0, 20, 300))
    ctrl, mic, _ = make(script, ControllerSettings(max_step_um=1.5))
    ctrl.lock(0.0)
    zs = [mic.z]
    for _ in range(300):
        ctrl.step()
        zs.append(mic.z)
    assert np.max(np.abs(np.diff(zs))) <= 1.5 + 1e-9
    assert ctrl.max_abs_move_um <= 1.5 + 1e-9


def test_absolute_limits_clamp_then_hold():
    settings = ControllerSettings(z_limits_um=(-1.0, 1.0), max_step_um=5.0)
    ctrl, mic, _ = make([3.0], settings)
    ctrl.lock(0.0)
    d = ctrl.step()
    assert d.reason == "moved_clamped" and mic.z == pytest.approx(1.0)
    d = ctrl.step()
    assert (d.action, d.reason) == ("hold", "at_limit") and mic.z == pytest.approx(1.0)


def test_microscope_limits_are_respected_too():
    ctrl, mic, _ = make([-50.0], ControllerSettings(max_step_um=100.0), limits=(-10.0, 10.0))
    ctrl.lock(0.0)
    ctrl.step()
    assert mic.z == pytest.approx(-10.0)
    assert ctrl.z_limits_um == (-10.0, 10.0)


def test_travel_from_lock_point_is_limited():
    """A confidently wrong model cannot run the stage away from where focus was locked."""
    settings = ControllerSettings(max_travel_um=4.0, max_step_um=3.0)
    ctrl, mic, _ = make([10.0] * 5, settings, limits=(-200.0, 200.0))
    ctrl.lock(0.0)
    reasons = [ctrl.step().reason for _ in range(5)]
    assert mic.z == pytest.approx(4.0)
    assert reasons[-1] == "at_limit"
    assert ctrl.z_limits_um == (-4.0, 4.0)


def test_travel_limit_can_be_disabled():
    ctrl, mic, _ = make([10.0] * 5, ControllerSettings(max_travel_um=None), limits=(-200.0, 200.0))
    ctrl.lock(0.0)
    for _ in range(5):
        ctrl.step()
    assert mic.z == pytest.approx(15.0)


@pytest.mark.parametrize(
    ("prediction", "reason"),
    [
        (FakePrediction(5.0, confidence=0.05), "low_confidence"),
        (FakePrediction(5.0, confidence=0.9, bimodal=True), "bimodal"),
        (FakePrediction(5.0, confidence=0.9, ood=True, ood_score=3.0), "out_of_distribution"),
    ],
)
def test_ambiguous_predictions_hold(prediction, reason):
    ctrl, mic, _ = make([prediction])
    ctrl.lock(0.0)
    for _ in range(10):
        d = ctrl.step()
        assert (d.action, d.reason) == ("hold", reason)
    assert mic.moves == [] and not ctrl.stopped  # ambiguity is not a failure


def test_out_of_distribution_frames_hold_unless_told_not_to():
    ood = FakePrediction(2.0, confidence=0.95, ood=True, ood_score=4.2)
    ctrl, mic, _ = make([ood])
    ctrl.lock(0.0)
    d = ctrl.step()
    assert (d.action, d.reason) == ("hold", "out_of_distribution")
    assert "OOD score 4.2 > 1" in d.message and mic.moves == []
    with pytest.raises(ZFocusError, match="cannot lock"):
        make([ood])[0].lock()  # nor is focus locked on such frames
    ctrl, mic, _ = make([ood], ControllerSettings(hold_on_ood=False))
    ctrl.lock(0.0)
    assert ctrl.step().action == "move" and mic.moves


def test_blank_frames_hold_without_calling_the_model():
    ctrl, mic, pred = make([5.0])
    mic.blank = True
    ctrl.lock(0.0)
    assert ctrl.step().reason == "blank_frame"
    assert pred.calls == 0 and mic.moves == []


def test_busy_stage_holds_then_times_out():
    ctrl, mic, _ = make([5.0], ControllerSettings(max_busy_frames=3, max_failures=1))
    ctrl.lock(0.0)
    mic.busy_for = 10
    assert [ctrl.step().reason for _ in range(2)] == ["stage_busy", "stage_busy"]
    d = ctrl.step()
    assert d.reason == "stage_timeout" and d.action == "stop" and ctrl.stopped
    assert mic.moves == []


def test_busy_then_free_moves():
    ctrl, mic, _ = make([5.0], ControllerSettings(max_step_um=10))
    ctrl.lock(0.0)
    mic.busy_for = 1
    assert ctrl.step().reason == "stage_busy"
    assert ctrl.step().reason == "moved" and mic.z == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("camera", "camera_error"), ("nan", "prediction_nan"), ("model", "model_error"),
     ("stage", "stage_error")],
)
def test_repeated_failures_stop_safely(fault, reason):
    script = {"nan": [math.nan], "model": [RuntimeError("CUDA error")]}.get(fault, [5.0])
    ctrl, mic, _ = make(script, ControllerSettings(max_failures=3))
    ctrl.lock(0.0)
    if fault == "camera":
        mic.camera_errors = 100
    if fault == "stage":
        mic.stage_errors = 100
    decisions = [ctrl.step() for _ in range(3)]
    assert [d.reason for d in decisions] == [reason] * 3
    assert [d.action for d in decisions] == ["hold", "hold", "stop"]
    assert ctrl.stopped and reason in ctrl.stop_reason
    z = mic.z
    mic.camera_errors = mic.stage_errors = 0
    later = ctrl.step()
    assert (later.action, later.reason) == ("stop", "stopped") and mic.z == z
    assert mic.moves == []


def test_a_good_frame_resets_the_failure_count():
    ctrl, mic, _ = make([0.0], ControllerSettings(max_failures=2))
    ctrl.lock(0.0)
    mic.camera_errors = 1
    assert ctrl.step().failures == 1
    assert ctrl.step().failures == 0
    mic.camera_errors = 1
    ctrl.step()
    assert not ctrl.stopped


def test_resume_after_stop():
    ctrl, mic, _ = make([5.0], ControllerSettings(max_failures=1, max_step_um=10))
    ctrl.lock(0.0)
    mic.camera_errors = 1
    ctrl.step()
    assert ctrl.stopped
    ctrl.resume()
    assert ctrl.step().reason == "moved"


def test_camera_error_mid_stream_never_moves():
    ctrl, mic, _ = make([0.0, 0.0, 4.0, 4.0], ControllerSettings(max_failures=5), truth=False)
    ctrl.lock(0.0)
    ctrl.step()
    mic.camera_errors = 2
    d1, d2 = ctrl.step(), ctrl.step()
    assert d1.reason == d2.reason == "camera_error" and mic.moves == []


def test_lock_on_current_estimate_uses_median():
    ctrl, _, _ = make([1.0, 9.0, 1.2], ControllerSettings(lock_frames=3))
    d = ctrl.lock()
    assert ctrl.locked_um == pytest.approx(1.2) and d.action == "lock"


def test_lock_fails_clearly_when_nothing_is_usable():
    ctrl, mic, _ = make([FakePrediction(0.0, confidence=0.01)])
    with pytest.raises(ZFocusError, match="cannot lock"):
        ctrl.lock()
    with pytest.raises(ZFocusError, match="finite"):
        ctrl.lock(math.nan)


def test_smoothing_survives_moves():
    # With smoothing the absolute focus estimate converges; moves do not reset it.
    ctrl, mic, _ = make([0.0], ControllerSettings(smoothing=0.5, dead_band_um=0.05), truth=True)
    mic.sample_z = 4.0
    ctrl.lock(0.0)
    for _ in range(20):
        ctrl.step()
    assert mic.z == pytest.approx(4.0, abs=0.1)
    # Smoothing absolute positions never overshoots (stale relative errors would).
    assert max(mic.moves) <= 4.0 + 0.05


def test_smoothing_reduces_chatter_under_noise():
    rng = np.random.default_rng(3)
    noise = list(rng.normal(0, 0.6, 400))
    counts = []
    for smoothing in (0.0, 0.8):
        ctrl, mic, _ = make(noise, ControllerSettings(smoothing=smoothing), truth=True)
        ctrl.lock(0.0)
        for _ in range(400):
            ctrl.step()
        counts.append(len(mic.moves))
    assert counts[1] < counts[0] / 3


@pytest.mark.parametrize(
    "bad",
    [dict(gain=0.0), dict(gain=1.5), dict(dead_band_um=-1), dict(max_step_um=0),
     dict(smoothing=1.0), dict(z_limits_um=(5.0, -5.0)), dict(max_failures=0)],
)
def test_bad_settings_raise(bad):
    with pytest.raises(ZFocusError):
        ControllerSettings(**bad).validate()


def test_csv_export_is_complete_and_atomic(tmp_path):
    ctrl, mic, _ = make([0.0, 3.0])
    ctrl.lock(0.0)
    ctrl.step()
    ctrl.step()
    out = ctrl.export_csv(tmp_path / "log" / "decisions.csv")
    rows = list(csv.DictReader(out.open()))
    assert tuple(rows[0]) == DECISION_COLUMNS
    assert [r["reason"] for r in rows] == ["locked", "in_dead_band", "moved"]
    assert float(rows[2]["move_um"]) == pytest.approx(3.0)
    assert [p.name for p in out.parent.iterdir()] == ["decisions.csv"]  # no temp left


def test_summary_counts_by_reason():
    ctrl, mic, _ = make([0.0, 3.0, FakePrediction(1.0, 0.01)])
    ctrl.lock(0.0)
    for _ in range(4):
        ctrl.step()
    s = ctrl.summary()
    assert s["moves"] == 1
    assert s["holds"] == {"in_dead_band": 1, "low_confidence": 2}
