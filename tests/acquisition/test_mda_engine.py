"""The acquisition autofocus engine on a UniMMCore with Python devices (one position)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("pymmcore_plus")
useq = pytest.importorskip("useq")

from _acq_fakes import (
    FakePrediction,
    FunctionDrift,
    TruthModel,
    no_waits,
    simulated_core,
    timed_sim,
)

from napari_zfocus.acquisition.autofocus import AcquisitionAutofocus
from napari_zfocus.acquisition.engine import ACTION_NAME, ZFocusEngine, check_sequence
from napari_zfocus.acquisition.settings import (
    CORRECTED,
    HELD,
    IN_FOCUS,
    LOCKED,
    SKIPPED,
    AutofocusSettings,
)
from napari_zfocus.errors import ZFocusError


def steps_of(um_per_step: float, interval_s: float = 600.0) -> FunctionDrift:
    """The sample rises ``um_per_step`` at every interval (just after each time point)."""
    return FunctionDrift(lambda t: um_per_step * math.floor(t / interval_s + 1e-9))


def run_with_autofocus(sim, core, model, sequence, frames=None, **settings):
    af = AcquisitionAutofocus(core, model, AutofocusSettings(**settings))
    seen = []
    core.mda.events.frameReady.connect(
        lambda img, ev, meta: seen.append(
            (dict(ev.index), float(core.getZPosition()), sim.sample_z_um(), meta)
        )
    )
    with af, no_waits(sim, core) as engine:
        core.mda.run(sequence)
    af.last_engine = engine  # the run's engine, kept for its counters after removal
    return af, seen


def test_install_and_remove_restore_the_previous_engine():
    sim = timed_sim(steps_of(0.0))
    with simulated_core(sim) as core:
        before = core.mda.engine
        af = AcquisitionAutofocus(core, TruthModel(sim, core))
        engine = af.install()
        assert isinstance(engine, ZFocusEngine) and core.mda.engine is engine
        assert af.install() is engine  # idempotent
        af.remove()
        assert core.mda.engine is before and not af.installed
        af.remove()  # idempotent
        assert core.mda.engine is before


def test_install_and_remove_are_refused_during_an_acquisition(monkeypatch):
    sim = timed_sim(steps_of(0.0))
    with simulated_core(sim) as core:
        af = AcquisitionAutofocus(core, TruthModel(sim, core))
        monkeypatch.setattr(core.mda, "is_running", lambda: True)
        with pytest.raises(ZFocusError, match="running"):
            af.install()
        monkeypatch.undo()
        af.install()
        monkeypatch.setattr(core.mda, "is_running", lambda: True)
        with pytest.raises(ZFocusError, match="running"):
            af.remove()
        monkeypatch.undo()
        af.remove()


def test_a_model_is_needed_for_the_cnn_method():
    sim = timed_sim(steps_of(0.0))
    with simulated_core(sim) as core, pytest.raises(ZFocusError, match="needs a model"):
        AcquisitionAutofocus(core, None).install()


@pytest.mark.parametrize("with_plan", [True, False])
def test_corrections_follow_the_drift_and_carry_to_the_relative_z_stack(with_plan):
    sim = timed_sim(steps_of(1.5))  # 1.5 um per time point: 6 um over 4 intervals
    with simulated_core(sim) as core:
        plan = useq.AxesBasedAF(axes=("p", "t")) if with_plan else None
        seq = useq.MDASequence(
            stage_positions=[(0.0, 0.0, 0.0)], time_plan={"interval": 600, "loops": 5},
            z_plan={"range": 2, "step": 1}, autofocus_plan=plan,
        )
        af, seen = run_with_autofocus(sim, core, TruthModel(sim, core), seq)
    records = af.records
    assert [r.decision for r in records] == [LOCKED] + [CORRECTED] * 4
    assert all(r.focus_frames == 1 for r in records[1:])  # one frame per refocus
    assert [round(r.correction_um, 6) for r in records[1:]] == [1.5] * 4
    for index, stage_z, sample_z, meta in seen:
        planned = index["z"] - 1.0  # -1, 0, +1 um around the position
        assert stage_z - sample_z == pytest.approx(planned, abs=1e-6)
        assert meta["zfocus"]["refocus"] == index["t"]
        assert meta["zfocus"]["focus_z_um"] == pytest.approx(1.5 * index["t"])
    assert len(seen) == 15


def test_custom_action_events_refocus():
    sim = timed_sim(steps_of(2.0, interval_s=1.0))
    with simulated_core(sim) as core:
        base = {"z_pos": 0.0, "channel": None}
        events = []
        for t in range(3):
            events.append(useq.MDAEvent(index={"t": t}, min_start_time=t,
                                        action=useq.CustomAction(name=ACTION_NAME), **base))
            events.append(useq.MDAEvent(index={"t": t}, min_start_time=t, **base))
        af, seen = run_with_autofocus(sim, core, TruthModel(sim, core), events,
                                      refocus_without_plan=False)
    assert [r.decision for r in af.records] == [LOCKED, CORRECTED, CORRECTED]
    assert [round(s[1] - s[2], 6) for s in seen] == [0.0, 0.0, 0.0]


def test_in_the_dead_band_nothing_moves():
    sim = timed_sim(FunctionDrift(lambda t: 0.1 * math.floor(t / 600 + 1e-9)))
    with simulated_core(sim) as core:
        seq = useq.MDASequence(time_plan={"interval": 600, "loops": 2})
        af, _ = run_with_autofocus(sim, core, TruthModel(sim, core), seq, dead_band_um=0.2)
    assert [r.decision for r in af.records] == [LOCKED, IN_FOCUS]
    assert af.records[1].correction_um == 0.0


def test_a_large_correction_is_confirmed_by_a_second_frame_and_cut_to_the_max_step():
    sim = timed_sim(steps_of(7.0))  # 7 um in one interval, max step 5 um
    with simulated_core(sim) as core:
        seq = useq.MDASequence(time_plan={"interval": 600, "loops": 2})
        af, seen = run_with_autofocus(sim, core, TruthModel(sim, core), seq, max_step_um=5.0)
    last = af.records[-1]
    assert last.focus_frames == 2 and last.max_move_um <= 5.0
    assert last.correction_um == pytest.approx(7.0)
    assert seen[-1][1] - seen[-1][2] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("policy", "decision", "frames"), [("hold", HELD, 2), ("skip", SKIPPED, 1)]
)
def test_no_usable_estimate_follows_the_policy(policy, decision, frames):
    """Model failures at the second time point: hold acquires at the last good z; skip
    leaves that time point out."""
    sim = timed_sim(steps_of(0.5))

    def script(n):  # lock takes 3 frames; then every estimate fails
        return RuntimeError("model broke") if n >= 3 else None

    with simulated_core(sim) as core:
        seq = useq.MDASequence(time_plan={"interval": 600, "loops": 2})
        af, seen = run_with_autofocus(sim, core, TruthModel(sim, core, script=script), seq,
                                      policy=policy, max_focus_frames=3)
        skipped = af.last_engine.skipped_frames
    assert af.records[-1].decision == decision
    assert af.records[-1].focus_frames == 3  # it tried, within the frame budget
    assert len(seen) == frames
    assert skipped == 2 - frames


def test_low_confidence_and_bimodal_frames_hold():
    sim = timed_sim(steps_of(0.5))

    def script(n):
        if n < 3:
            return None
        bad = FakePrediction(8.0, 8.0, 0.05) if n % 2 else FakePrediction(8.0, 8.0, 0.9, True)
        return bad

    with simulated_core(sim) as core:
        seq = useq.MDASequence(time_plan={"interval": 600, "loops": 3})
        af, seen = run_with_autofocus(sim, core, TruthModel(sim, core, script=script), seq)
    assert [r.decision for r in af.records] == [LOCKED, HELD, HELD]
    assert all(r.correction_um == 0.0 for r in af.records)
    assert {r.reason for r in af.records[1:]} <= {"low_confidence", "bimodal"}


def test_an_absolute_z_plan_is_refused_with_a_clear_message():
    seq = useq.MDASequence(z_plan={"top": 2, "bottom": 0, "step": 1})
    with pytest.raises(ZFocusError, match="absolute z plan"):
        check_sequence(seq)
    sim = timed_sim(steps_of(0.0))
    with simulated_core(sim) as core, AcquisitionAutofocus(core, TruthModel(sim, core)), \
            pytest.raises(ZFocusError, match="absolute z plan"):
        core.mda.run(seq)


def test_method_none_records_nothing_and_moves_nothing():
    sim = timed_sim(steps_of(1.0))
    with simulated_core(sim) as core:
        seq = useq.MDASequence(time_plan={"interval": 600, "loops": 3})
        af, seen = run_with_autofocus(sim, core, None, seq, method="none")
    assert af.records == []
    assert [round(s[1], 6) for s in seen] == [0.0, 0.0, 0.0]
