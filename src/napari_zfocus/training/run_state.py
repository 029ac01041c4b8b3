"""The life cycle of one background training run, without Qt.

:class:`TrainingRun` is the model behind the training widget: an explicit state machine
(``idle -> running -> stopping -> done | failed``), the loss / validation history for the
live plot, and a :class:`Throttle` that limits plot redraws. It is *evented*: psygnal
signals announce every state change, step, metrics and message, so the dock (or a script,
or a test) only connects to them and renders. The dock forwards button clicks and the
core's :class:`~napari_zfocus.training.loop.TrainEvent` s (:meth:`TrainingRun.apply`);
every rule (no second launch while one runs, Stop only while running, Resume only with a
checkpoint) is unit tested here without a display.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from psygnal import Signal

from napari_zfocus.errors import ZFocusError

if TYPE_CHECKING:
    from napari_zfocus.training.loop import TrainEvent


class RunState(str, Enum):
    """Explicit states of a training run."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    DONE = "done"
    FAILED = "failed"


#: Allowed transitions; anything else is a programming error or a double click.
_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.IDLE: frozenset({RunState.RUNNING}),
    RunState.RUNNING: frozenset({RunState.STOPPING, RunState.DONE, RunState.FAILED}),
    RunState.STOPPING: frozenset({RunState.DONE, RunState.FAILED}),
    RunState.DONE: frozenset({RunState.RUNNING}),
    RunState.FAILED: frozenset({RunState.RUNNING}),
}


@dataclass
class History:
    """What the live plot shows: training loss per step and validation error per check."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_errors: list[float] = field(default_factory=list)

    def add_loss(self, step: int, loss: float) -> None:
        if math.isfinite(loss):
            self.steps.append(int(step))
            self.losses.append(float(loss))

    def add_validation(self, step: int, error: float) -> None:
        if math.isfinite(error):
            self.val_steps.append(int(step))
            self.val_errors.append(float(error))


class Throttle:
    """Say yes at most once every ``min_interval_s`` (first call: yes).

    Used so a fast training loop does not redraw the plot more than ~4 times a second.
    """

    def __init__(self, min_interval_s: float = 0.25, clock: Callable[[], float] = time.monotonic):
        self.min_interval_s = float(min_interval_s)
        self._clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        """True (and restart the interval) when enough time has passed since the last yes."""
        now = self._clock()
        if self._last is None or now - self._last >= self.min_interval_s:
            self._last = now
            return True
        return False

    def reset(self) -> None:
        self._last = None


def format_metrics(metrics: dict[str, float], final: bool) -> str:
    """One line of validation metrics for a status label ("" when there are none yet)."""
    if not metrics:
        return "no validation images: no metrics" if final else ""
    parts = []
    if "median_abs_error_um" in metrics:
        parts.append(f"median |error| {metrics['median_abs_error_um']:.2f} um")
    if "within_1um" in metrics:
        parts.append(f"within \u00b11 um: {100 * metrics['within_1um']:.0f}%")
    if "rmse_um" in metrics:
        parts.append(f"RMSE {metrics['rmse_um']:.2f} um")
    if "n_images" in metrics:
        parts.append(f"{int(metrics['n_images'])} validation images")
    return ("final: " if final else "validation: ") + ", ".join(parts)


class TrainingRun:
    """State, history and outcome of the current (or last) training run.

    Signals (emitted in the thread that calls the method, the GUI thread in the dock):

    * ``state_changed(RunState)`` -- every transition;
    * ``progressed(int)`` -- a new step count (the history may have grown);
    * ``metrics_changed(dict, bool)`` -- validation metrics, and whether they are final;
    * ``message(str)`` -- what the core says it trains on (stacks, images, device);
    * ``checkpoint_changed(object)`` -- the checkpoint path (Path or None) changed.
    """

    state_changed = Signal(object)
    progressed = Signal(int)
    metrics_changed = Signal(dict, bool)
    message = Signal(str)
    checkpoint_changed = Signal(object)

    def __init__(self) -> None:
        self.state = RunState.IDLE
        self.final_event: TrainEvent | None = None
        self.history = History()
        self.step = 0
        self.total_steps: int | None = None
        self.error: str | None = None
        self.cancelled = False
        self.metrics: dict[str, float] = {}
        self.model_path: Path | None = None
        self._checkpoint_path: Path | None = None

    @property
    def checkpoint_path(self) -> Path | None:
        """Where the run's checkpoint is (or will be); set by the dock or by the core."""
        return self._checkpoint_path

    @checkpoint_path.setter
    def checkpoint_path(self, path: Path | str | None) -> None:
        new = Path(path) if path is not None else None
        if new != self._checkpoint_path:
            self._checkpoint_path = new
            self.checkpoint_changed.emit(new)

    # ------------------------------------------------------------- queries
    @property
    def can_start(self) -> bool:
        return self.state in (RunState.IDLE, RunState.DONE, RunState.FAILED)

    @property
    def can_stop(self) -> bool:
        return self.state is RunState.RUNNING

    @property
    def is_active(self) -> bool:
        """A worker is alive (running or finishing its stop)."""
        return self.state in (RunState.RUNNING, RunState.STOPPING)

    def can_resume(self) -> bool:
        """Resume needs a finished run and a checkpoint on disk."""
        return (
            self.can_start
            and self.checkpoint_path is not None
            and Path(self.checkpoint_path).is_file()
        )

    @property
    def has_model(self) -> bool:
        return (
            self.state is RunState.DONE
            and self.model_path is not None
            and Path(self.model_path).is_file()
        )

    def status_text(self) -> str:
        """One line for the widget's status label."""
        progress = f"step {self.step}" + (f" / {self.total_steps}" if self.total_steps else "")
        if self.state is RunState.IDLE:
            return "idle: choose a dataset and press Start"
        if self.state is RunState.RUNNING:
            return f"running: {progress}"
        if self.state is RunState.STOPPING:
            return f"stopping: saving a checkpoint at {progress}"
        if self.state is RunState.FAILED:
            return f"failed: {self.error}"
        how = "stopped" if self.cancelled else "finished"
        return f"done ({how} at {progress})"

    # ----------------------------------------------------------- transitions
    def _check(self, new: RunState) -> None:
        """Raise (changing nothing) unless the run may go to ``new`` now."""
        if new not in _TRANSITIONS[self.state]:
            if new is RunState.RUNNING:
                raise ZFocusError("training is already running: stop it first")
            raise ZFocusError(f"cannot go from {self.state.value} to {new.value}")

    def _go(self, new: RunState) -> None:
        self._check(new)
        self.state = new
        self.state_changed.emit(new)

    def start(self, *, resume: bool = False, total_steps: int | None = None) -> None:
        """Begin a run. A fresh start clears the history; a resume keeps it.

        Raises
        ------
        ZFocusError
            A run is already active (a second launch is refused).
        """
        if resume and not self.can_resume():
            raise ZFocusError(
                f"{self.checkpoint_path or 'checkpoint'}: nothing to resume (no checkpoint on disk)"
            )
        self._check(RunState.RUNNING)
        if not resume:
            self.history = History()
            self.step = 0
        self.total_steps = total_steps
        self.error = None
        self.cancelled = False
        self.metrics = {}
        self.final_event = None
        self._go(RunState.RUNNING)  # last: listeners see the new run's values

    def request_stop(self) -> bool:
        """Ask the running job to stop; False when there is nothing to stop."""
        if not self.can_stop:
            return False
        self._go(RunState.STOPPING)
        return True

    def progress(
        self, step: int, loss: float | None = None, val_error: float | None = None
    ) -> None:
        """Record one training event from the worker."""
        self.step = int(step)
        if loss is not None:
            self.history.add_loss(step, loss)
        if val_error is not None:
            self.history.add_validation(step, val_error)
        self.progressed.emit(self.step)

    def finish(
        self,
        *,
        model_path: Path | None = None,
        checkpoint_path: Path | None = None,
        metrics: dict[str, float] | None = None,
        cancelled: bool | None = None,
    ) -> None:
        """The worker returned normally (completed, or stopped with a checkpoint saved)."""
        was_stopping = self.state is RunState.STOPPING
        self._check(RunState.DONE)
        self.cancelled = was_stopping if cancelled is None else bool(cancelled)
        self.model_path = Path(model_path) if model_path is not None else None
        if checkpoint_path is not None:
            self.checkpoint_path = Path(checkpoint_path)
        self.metrics = dict(metrics or {})
        self._go(RunState.DONE)
        self.metrics_changed.emit(self.metrics, True)

    def fail(self, message: str) -> None:
        """The worker raised: record the message; a new start is allowed."""
        self._check(RunState.FAILED)
        self.error = message
        self._go(RunState.FAILED)

    # ------------------------------------------------- the core's events, in order
    def apply(self, event: TrainEvent) -> None:
        """Record one :class:`TrainEvent` of the core (``done`` / ``cancelled`` are kept
        until :meth:`returned`: the run ends when the core's thread has returned)."""
        if event.kind == "step":
            self.progress(event.step, loss=event.loss)
        elif event.kind == "validation":
            self.progress(event.step, val_error=event.metrics.get("median_abs_error_um"))
            self.metrics_changed.emit(dict(event.metrics), False)
        elif event.kind == "start":
            self.progress(event.step)
            self.message.emit(event.message)
        elif event.kind == "checkpoint" and event.checkpoint_path:
            self.checkpoint_path = Path(event.checkpoint_path)
        elif event.kind in ("done", "cancelled"):
            self.final_event = event

    def returned(self) -> None:
        """The core returned: finish with its last event (ignored when there was none)."""
        event = self.final_event
        if event is None or not self.is_active:
            return
        self.finish(
            model_path=Path(event.model_path) if event.model_path else None,
            checkpoint_path=Path(event.checkpoint_path) if event.checkpoint_path else None,
            metrics=event.metrics,
            cancelled=event.kind == "cancelled",
        )

    def errored(self, message: str) -> None:
        """The core raised: the run failed (ignored when it is no longer active)."""
        if self.is_active:
            self.fail(message)

    def thread_ended(self) -> None:
        """The core's thread ended: a run still active was interrupted (no final event)."""
        if self.is_active:
            self.fail("interrupted")
