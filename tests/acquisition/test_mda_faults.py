"""The acquisition autofocus on the simulated plate: channels, faults and policies.

A multi-position MDA on :class:`SimulatedScope` (pattern renderer, small frames) with a
model that reads the camera's ground truth, so every check is about the engine: which
frames it takes, where the focus goes, what it does when a frame or the stage fails.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("pymmcore_plus")
useq = pytest.importorskip("useq")

from napari_zfocus.acquisition.autofocus import AcquisitionAutofocus
from napari_zfocus.acquisition.settings import (
    CORRECTED,
    HELD,
    IN_FOCUS,
    LOCKED,
    SCANNED,
    SKIPPED,
    AutofocusSettings,
)
from napari_zfocus.acquisition.simulated_scope import (
    SimulatedScope,
    SimulatedScopeSettings,
    simulated_waits,
)


class GroundTruth:
    """Reads the true defocus of the frame just snapped; says "bimodal" on a mixed frame."""

    def __init__(self, scope: SimulatedScope, on_predict=None) -> None:
        self.scope = scope
        self.on_predict = on_predict

    def predict(self, image, pixel_size_um):
        snap = self.scope.last_snap
        ood = bool(self.on_predict(snap)) if self.on_predict is not None else False
        z = snap.true_defocus_um if snap.true_defocus_um is not None else math.nan
        return type("P", (), {"z_um": z, "z_argmax_um": z, "confidence": 0.9,
                              "bimodal": snap.fault == "bimodal", "ood": ood,
                              "ood_score": 1.5 if ood else 0.5})()


@pytest.fixture
def scope():
    s = SimulatedScope(SimulatedScopeSettings(positions=2, renderer="pattern", shape=(48, 48),
                                              drift_um=6.0, duration_h=1.0, wander_um=0.0))
    yield s
    s.close()


def sequence(scope, loops=3, channels=("BF",), z_plan=None):
    return useq.MDASequence(
        stage_positions=scope.position_list(),
        channels=[{"config": c, "group": "Channel"} for c in channels],
        time_plan={"interval": 600, "loops": loops}, z_plan=z_plan, axis_order="tpcz",
    )


def acquire(scope, seq, *, at=None, fault=None, count=1, on_predict=None, **settings):
    """Run ``seq`` with the autofocus; arm ``fault`` x ``count`` when event ``at`` (a dict
    index) starts. Returns (records, image snaps, engine)."""
    core = scope.core
    images, indices = [], []
    acquire.indices = indices  # the event index of each image, for checks by slice

    def started(event):
        if at is not None and dict(event.index) == at:
            setattr(scope.faults, fault, count)

    core.mda.events.eventStarted.connect(started)
    core.mda.events.frameReady.connect(
        lambda img, ev, meta: images.append(scope.last_snap) or indices.append(dict(ev.index))
    )
    settings.setdefault("focus_group", "Channel")
    settings.setdefault("focus_preset", "BF")
    af = AcquisitionAutofocus(core, GroundTruth(scope, on_predict), AutofocusSettings(**settings))
    with af, simulated_waits(scope) as engine:
        core.mda.run(seq)
    return af.records, images, engine


def test_the_focus_channel_is_used_and_the_imaging_channel_restored(scope):
    records, images, _ = acquire(scope, sequence(scope, channels=("FL",),
                                                 z_plan={"range": 2, "step": 1}))
    assert [r.decision for r in records[:2]] == [LOCKED, LOCKED]
    assert {r.decision for r in records[2:]} <= {CORRECTED, IN_FOCUS}  # p1 follows p0's drift
    assert {s.channel for s in images} == {"FL"}  # focus frames were BF, images FL
    assert len(images) == 2 * 3 * 3
    for snap, index in zip(images, acquire.indices, strict=True):
        # the correction carried to every slice of the relative stack (-1, 0, +1 um)
        assert snap.true_defocus_um + (index["z"] - 1) == pytest.approx(0.0, abs=0.01)


def test_camera_errors_on_the_focus_frame_hold_and_the_run_goes_on(scope):
    at = {"t": 1, "p": 0, "c": 0}
    records, images, _ = acquire(scope, sequence(scope), at=at, fault="camera_errors",
                                 count=3, policy="hold")
    r = next(r for r in records if (r.p, r.t) == (0, 1))
    assert r.decision == HELD and r.reason == "camera_error" and r.focus_frames == 3
    assert len(images) == 2 * 3  # nothing skipped
    assert next(r for r in records if (r.p, r.t) == (0, 2)).decision in (CORRECTED, IN_FOCUS)


def test_a_blank_focus_frame_is_retaken(scope):
    records, _, _ = acquire(scope, sequence(scope), at={"t": 1, "p": 1, "c": 0},
                            fault="blank_frames")
    r = next(r for r in records if (r.p, r.t) == (1, 1))
    assert r.decision in (CORRECTED, IN_FOCUS) and r.focus_frames == 2


def test_a_bimodal_focus_frame_is_not_followed(scope):
    records, images, _ = acquire(scope, sequence(scope), at={"t": 2, "p": 0, "c": 0},
                                 fault="bimodal_frames", count=3)
    r = next(r for r in records if (r.p, r.t) == (0, 2))
    assert r.decision == HELD and r.reason == "bimodal" and r.correction_um == 0.0


def test_stage_errors_on_the_correction_hold_without_moving(scope):
    def arm(snap):  # the first focus frame of p0 at t1: its correction moves fail
        if snap.p_index == 0 and 590 < snap.time_s < 700 and not arm.done:
            arm.done = True
            scope.faults.stage_errors = 3

    arm.done = False
    records, images, _ = acquire(scope, sequence(scope), on_predict=arm, policy="hold")
    r = next(r for r in records if (r.p, r.t) == (0, 1))
    assert r.decision == HELD and r.reason == "stage_error" and r.max_move_um == 0.0
    assert r.focus_frames == 3  # it tried with each frame of its budget
    assert len(images) == 2 * 3


def test_a_stage_error_on_the_way_to_a_position_is_recorded_and_the_run_goes_on(scope):
    records, images, engine = acquire(scope, sequence(scope), at={"t": 1, "p": 1, "c": 0},
                                      fault="stage_errors", count=1)
    r = next(r for r in records if (r.p, r.t) == (1, 1))
    assert r.decision == HELD and r.reason == "stage_error" and r.focus_frames == 0
    assert "failed" in r.message
    assert len(images) == 2 * 3 and engine.skipped_frames == 0


def test_skip_policy_leaves_out_that_position_at_that_time_point(scope):
    records, images, engine = acquire(scope, sequence(scope, channels=("BF", "FL")),
                                      at={"t": 1, "p": 0, "c": 0}, fault="camera_errors",
                                      count=3, policy="skip")
    assert next(r for r in records if (r.p, r.t) == (0, 1)).decision == SKIPPED
    assert engine.skipped_frames == 2
    assert len(images) == 2 * 3 * 2 - 2
    assert not any(s.p_index == 0 and math.isclose(s.time_s, 600, abs_tol=5) for s in images)


def test_scan_policy_finds_focus_without_the_model(scope):
    records, images, _ = acquire(scope, sequence(scope), at={"t": 1, "p": 0, "c": 0},
                                 fault="bimodal_frames", count=3, policy="scan")
    r = next(r for r in records if (r.p, r.t) == (0, 1))
    assert r.decision == SCANNED and r.focus_frames > 3
    assert r.max_move_um <= 5.0


def test_a_position_far_out_of_range_is_skipped_and_the_others_acquired(scope):
    seq = sequence(scope)
    far = seq.stage_positions[1].model_copy(update={"z": 900.0})
    seq = seq.model_copy(update={"stage_positions": (seq.stage_positions[0], far)})
    records, images, engine = acquire(scope, seq, z_limits_um=(-100.0, 100.0))
    assert {s.p_index for s in images} == {0}
    assert engine.skipped_frames == 3
    assert all(-100.0 <= s.stage_z_um <= 100.0 for s in images)
    assert all(r.p == 0 for r in records)


def _unlike_the_model_world(frames: int):
    """An ``on_predict`` that calls the first ``frames`` focus frames of p0 at t1 out of
    distribution (the model's own world is flagged now and then, at one z of a field)."""
    def flag(snap):
        if snap.p_index == 0 and 590 < snap.time_s < 700 and flag.left > 0:
            flag.left -= 1
            return True
        return False

    flag.left = frames
    return flag


def test_a_frame_flagged_out_of_distribution_is_followed_by_one_at_another_z(scope):
    records, images, _ = acquire(scope, sequence(scope), on_predict=_unlike_the_model_world(1))
    r = next(r for r in records if (r.p, r.t) == (0, 1))
    assert r.decision in (CORRECTED, IN_FOCUS) and r.focus_frames >= 2
    assert r.max_move_um == pytest.approx(2.0, abs=0.3)  # the 2 um probe, then back to focus
    image = next(s for s in images if s.p_index == 0 and 590 < s.time_s < 700)
    assert image.true_defocus_um == pytest.approx(0.0, abs=0.05)


def test_when_the_probe_frame_is_flagged_too_the_stage_walks_back_and_holds(scope):
    records, images, _ = acquire(scope, sequence(scope), on_predict=_unlike_the_model_world(9))
    r = next(r for r in records if (r.p, r.t) == (0, 1))
    assert r.decision == HELD and r.reason == "out_of_distribution" and r.focus_frames == 3
    assert r.max_move_um == pytest.approx(2.0) and r.correction_um == pytest.approx(0.0)
    image = next(s for s in images if s.p_index == 0 and 590 < s.time_s < 700)
    assert image.stage_z_um == pytest.approx(r.stage_z_um)  # imaged where it was found


def test_without_a_probe_distance_the_frames_are_retaken_in_place(scope):
    records, _, _ = acquire(scope, sequence(scope), on_predict=_unlike_the_model_world(9),
                            probe_um=0.0)
    r = next(r for r in records if (r.p, r.t) == (0, 1))
    assert r.decision == HELD and r.max_move_um == 0.0 and r.focus_frames == 3
