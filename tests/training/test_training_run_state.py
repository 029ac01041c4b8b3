"""The training run state machine and plot throttle, without Qt."""

from __future__ import annotations

import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.training.run_state import RunState, Throttle, TrainingRun


def test_full_cycle_and_restart():
    run = TrainingRun()
    assert run.state is RunState.IDLE and run.can_start and not run.can_stop
    run.start(total_steps=10)
    assert run.state is RunState.RUNNING and run.is_active and not run.can_start
    run.progress(1, loss=3.0)
    run.progress(2, loss=2.5, val_error=4.0)
    assert run.history.steps == [1, 2] and run.history.val_errors == [4.0]
    assert "step 2 / 10" in run.status_text()
    run.finish(metrics={"median_abs_error_um": 1.5})
    assert run.state is RunState.DONE and not run.cancelled
    assert run.metrics == {"median_abs_error_um": 1.5}
    run.start()  # a new run from done is allowed and clears the history
    assert run.history.steps == [] and run.step == 0


def test_second_start_refused_while_running_or_stopping():
    run = TrainingRun()
    run.start()
    with pytest.raises(ZFocusError, match="already running"):
        run.start()
    assert run.request_stop()
    assert run.state is RunState.STOPPING
    with pytest.raises(ZFocusError, match="already running"):
        run.start()
    assert not run.request_stop()  # a second Stop click is harmless


def test_stop_marks_done_cancelled_and_resume_needs_checkpoint(tmp_path):
    run = TrainingRun()
    run.start()
    run.progress(5, loss=1.0)
    run.request_stop()
    ckpt = tmp_path / "ckpt.pt"
    run.finish(checkpoint_path=ckpt)
    assert run.state is RunState.DONE and run.cancelled
    assert "stopped" in run.status_text()
    assert not run.can_resume()  # the file does not exist
    with pytest.raises(ZFocusError, match="nothing to resume"):
        run.start(resume=True)
    ckpt.write_bytes(b"x")
    assert run.can_resume()
    run.start(resume=True)
    assert run.history.steps == [5]  # resume keeps the curve


def test_failure_then_restart():
    run = TrainingRun()
    run.start()
    run.fail("data: no annotated stacks")
    assert run.state is RunState.FAILED
    assert "no annotated stacks" in run.status_text()
    run.start()
    assert run.state is RunState.RUNNING and run.error is None


def test_illegal_transitions():
    run = TrainingRun()
    with pytest.raises(ZFocusError):
        run.finish()
    with pytest.raises(ZFocusError):
        run.fail("x")


def test_non_finite_losses_are_not_plotted():
    run = TrainingRun()
    run.start()
    run.progress(1, loss=float("nan"), val_error=float("inf"))
    assert run.history.steps == [] and run.history.val_steps == []
    assert run.step == 1


def test_throttle_limits_rate():
    now = [0.0]
    throttle = Throttle(0.25, clock=lambda: now[0])
    assert throttle.ready()
    now[0] = 0.1
    assert not throttle.ready()
    now[0] = 0.26
    assert throttle.ready()
    now[0] = 0.3
    assert not throttle.ready()
    throttle.reset()
    assert throttle.ready()


def _event(kind: str, step: int, **kw):
    from napari_zfocus.training.loop import TrainEvent

    return TrainEvent(kind=kind, step=step, **kw)


def test_signals_follow_a_run_driven_by_core_events_without_qt(tmp_path):
    run = TrainingRun()
    seen: list[tuple] = []
    run.state_changed.connect(lambda state: seen.append(("state", state)))
    run.progressed.connect(lambda step: seen.append(("step", step)))
    run.metrics_changed.connect(lambda m, final: seen.append(("metrics", final, dict(m))))
    run.message.connect(lambda text: seen.append(("message", text)))
    run.checkpoint_changed.connect(lambda path: seen.append(("checkpoint", path)))
    run.start(total_steps=4)
    run.apply(_event("start", 0, message="4 stacks on cpu"))
    run.apply(_event("step", 1, loss=2.0))
    run.apply(_event("validation", 1, metrics={"median_abs_error_um": 3.0}))
    run.apply(_event("checkpoint", 1, checkpoint_path=str(tmp_path / "m.zfm.ckpt")))
    final = {"median_abs_error_um": 2.5}
    run.apply(_event("done", 4, metrics=final, model_path=str(tmp_path / "m.zfm")))
    assert run.state is RunState.RUNNING  # ends only when the core's thread returned
    run.returned()
    assert seen == [
        ("state", RunState.RUNNING), ("step", 0), ("message", "4 stacks on cpu"),
        ("step", 1), ("step", 1), ("metrics", False, {"median_abs_error_um": 3.0}),
        ("checkpoint", tmp_path / "m.zfm.ckpt"), ("state", RunState.DONE),
        ("metrics", True, final),
    ]
    assert run.model_path == tmp_path / "m.zfm" and not run.cancelled
    assert run.history.steps == [1] and run.history.val_errors == [3.0]
    run.thread_ended()  # after a normal end: nothing changes
    assert run.state is RunState.DONE


def test_cancelled_event_error_and_interrupted_thread():
    run = TrainingRun()
    run.start()
    assert run.request_stop()
    run.apply(_event("cancelled", 7, metrics={}))
    run.returned()
    assert run.state is RunState.DONE and run.cancelled and run.step == 0
    states: list[RunState] = []
    run.state_changed.connect(states.append)
    run.start(resume=False)
    run.errored("data: broken")
    run.errored("a second report")  # ignored: the run already failed
    assert run.state is RunState.FAILED and run.error == "data: broken"
    run.start()
    run.returned()  # no final event: nothing to finish with
    run.thread_ended()
    assert run.state is RunState.FAILED and run.error == "interrupted"
    assert states == [RunState.RUNNING, RunState.FAILED, RunState.RUNNING, RunState.FAILED]


def test_refused_transitions_change_nothing_and_emit_nothing():
    run = TrainingRun()
    run.start()
    run.progress(3, loss=1.0)
    emitted: list = []
    run.state_changed.connect(emitted.append)
    with pytest.raises(ZFocusError, match="already running"):
        run.start()
    assert run.history.steps == [3] and run.step == 3 and not emitted


def test_metrics_line():
    from napari_zfocus.training.run_state import format_metrics

    assert format_metrics({}, final=False) == ""
    assert format_metrics({}, final=True) == "no validation images: no metrics"
    line = format_metrics(
        {"median_abs_error_um": 1.234, "within_1um": 0.5, "rmse_um": 2.0, "n_images": 40},
        final=True,
    )
    assert line == ("final: median |error| 1.23 um, within \u00b11 um: 50%, RMSE 2.00 um, "
                    "40 validation images")
