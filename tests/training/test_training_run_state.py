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
