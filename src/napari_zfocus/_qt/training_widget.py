"""Dock widget: train the z-position CNN in the background, with a live loss curve.

A thin view over the core: the form becomes a :class:`ModelConfig` and a
:class:`TrainConfig` (:func:`~napari_zfocus.training.recipe.build_train_config`; starting
from the base model or a model file, the start model's network and the fine-tuning
schedule, the start model named by plain data: ``"base"`` or its path),
:func:`napari_zfocus.training.loop.train` runs in a worker owned by the dock, and every
rule about what may happen when (one run at a time, Stop only while running, Resume only
with a checkpoint) lives in the Qt-free, evented
:class:`~napari_zfocus.training.run_state.TrainingRun`, whose signals this view renders.
Stop (and closing the dock or the viewer) sets the core's :class:`CancelToken`; the core
then writes a checkpoint and a usable model file in its own thread: nothing here waits.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils import progress
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_zfocus._qt._dock import ZFocusDock
from napari_zfocus._qt._plot import LossPlot
from napari_zfocus._qt._training_form import TrainingForm
from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.training.run_state import RunState, TrainingRun, format_metrics

#: Seconds between moves of napari's progress bar (each move processes Qt events).
BAR_INTERVAL_S = 0.1

if TYPE_CHECKING:
    import napari

    from napari_zfocus.training.loop import CancelToken, TrainConfig, TrainEvent


def _run_training(
    dataset: Path, model_config: ModelConfig, train_config: TrainConfig, cancel: CancelToken
) -> Any:
    """Worker body: the core generator, unchanged (plain data in, TrainEvents out)."""
    from napari_zfocus.training.loop import train

    yield from train(dataset, model_config, train_config, cancel)


class TrainingWidget(TrainingForm, ZFocusDock):
    """Train a model from an annotated dataset folder.

    Parameters
    ----------
    viewer
        The napari viewer (injected by npe2).
    parent
        Qt parent.
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(viewer, parent)
        self.run = TrainingRun()
        self.worker: Any = None
        self.cancel_token: CancelToken | None = None
        self.progress_bar: progress | None = None
        self._progress_in_steps = False
        self._in_bar_update = False
        self._bar_updated_at = -math.inf
        self._build_ui()
        self._connect_run()
        self._on_model_path_changed()

    # ------------------------------------------------------------------ layout
    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(self._files_box())
        layout.addWidget(self._network_box())
        layout.addWidget(self._training_box())
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip(
            "Continue from the checkpoint <model>.ckpt towards the budget "
            "(raise it to train longer)"
        )
        self.inspect_button = QPushButton("Inspect model")
        for button in (
            self.start_button, self.stop_button, self.resume_button, self.inspect_button
        ):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.data_label = QLabel("")  # what the core says it trains on (stacks, images, device)
        self.data_label.setWordWrap(True)
        self.data_label.setStyleSheet("color: #9a9a9a")
        layout.addWidget(self.data_label)
        self.plot = LossPlot()
        layout.addWidget(self.plot, 1)
        self.metrics_label = QLabel("")
        self.metrics_label.setWordWrap(True)
        layout.addWidget(self.metrics_label)

        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button.clicked.connect(lambda: self.stop())
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.inspect_button.clicked.connect(lambda: self.inspect_model())
        self.paper_box.toggled.connect(self._on_paper_toggled)
        self.model_edit.textChanged.connect(self._on_model_path_changed)
        self.dataset_edit.textChanged.connect(self._on_dataset_changed)

    def _connect_run(self) -> None:
        """Render the run's signals (guarded: the run may outlive this dock)."""
        guard = self.lifecycle.guard
        self.run.state_changed.connect(guard(self._refresh))
        self.run.progressed.connect(guard(self._on_progressed))
        self.run.metrics_changed.connect(guard(self._on_metrics))
        self.run.message.connect(guard(self.data_label.setText))

    def _on_model_path_changed(self, *_: Any) -> None:
        from napari_zfocus.training.checkpoint import checkpoint_path

        text = self.model_edit.text().strip()
        if not self.run.is_active:
            self.run.checkpoint_path = checkpoint_path(text) if text else None
        self._refresh()

    # ------------------------------------------------------------------ runs
    def start(
        self,
        resume: bool = False,
        *,
        model_config: ModelConfig | None = None,
        train_config: TrainConfig | None = None,
    ) -> bool:
        """Start (or resume) training in a worker. False (with a message) if refused.

        ``model_config`` / ``train_config`` override the form (scripts and tests).
        """
        if self.closed:
            return False
        try:
            dataset = self.dataset_edit.text().strip()
            if not dataset:
                raise ZFocusError("choose an annotated dataset folder")
            if not (Path(dataset) / "annotations.csv").is_file():
                raise ZFocusError(f"{dataset}: no annotations.csv (annotate stacks first)")
            mc = model_config or self.model_config()
            tc = train_config or self.train_config(resume)
            tc.resume = resume
            if train_config is not None:
                self.model_edit.setText(str(tc.out))
            if not self._output_allowed(Path(tc.out), resume, Path(dataset)):
                return False
            self._on_model_path_changed()
            self.run.start(resume=resume, total_steps=tc.steps)
        except ZFocusError as exc:
            show_error(str(exc))
            return False
        self._launch(Path(dataset), mc, tc, resume)
        return True

    def _launch(self, dataset: Path, mc: ModelConfig, tc: TrainConfig, resume: bool) -> None:
        """Clear the view for the run and start the core in a worker (plain data only)."""
        from napari_zfocus.training.loop import CancelToken

        token = CancelToken()
        self.cancel_token = token
        if not resume:
            self.plot.clear()
            self.metrics_label.setText("")
        self.data_label.setText("loading the dataset\u2026")
        self.plot.throttle.reset()
        use_steps = tc.steps is not None and tc.minutes is None
        self.progress_bar = progress(
            total=tc.steps if use_steps else 1000,
            desc="resuming training" if resume else "training",
        )
        self.lifecycle.add_cleanup(self.progress_bar.close)
        self._progress_in_steps = use_steps
        self.worker = self.start_worker(
            _run_training, dataset, mc, tc, token,
            yielded=self._on_event,
            returned=lambda *_: self.run.returned(),
            errored=self._on_errored,
            finished=lambda: self._on_finished(token),
            # Closing the dock or the viewer cancels the token instead of dropping the
            # generator: the core still saves its checkpoint and model, in its thread.
            cancel=token.cancel,
        )
        self._refresh()

    def _output_allowed(self, out: Path, resume: bool, dataset: Path) -> bool:
        """Whether training may write ``out``; asks before a fresh run replaces a model.

        Raises :class:`ZFocusError` for a file that is never replaced (not a model, the
        dataset's annotations.csv...), for Resume without a checkpoint, or an unwritable folder.
        """
        from napari_zfocus.outputs import OutputExistsError, check_model_output

        names = {"name": "model file", "resume_name": "Resume", "overwrite_name": "Start"}
        try:
            check_model_output(out, resume=resume, overwrite=False, dataset=dataset, **names)
        except OutputExistsError:
            if not self.ask_overwrite(out):
                return False
            check_model_output(out, resume=False, overwrite=True, dataset=dataset, **names)
        return True

    def ask_overwrite(self, out: Path) -> bool:
        """Ask whether a fresh training may replace the model ``out`` and its checkpoint."""
        answer = QMessageBox.question(
            self, "Replace the model?",
            f"{out} (or its checkpoint) already exists.\n\nStart a new training and replace "
            "it? Resume continues its training instead.",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No,
        )
        return answer == QMessageBox.Yes

    def stop(self) -> bool:
        """Ask the running training to save a checkpoint and stop."""
        if not self.run.request_stop():
            return False
        if self.cancel_token is not None:
            self.cancel_token.cancel()
        self._refresh()
        return True

    def inspect_model(self) -> Any:
        """Open the inspection dock on the trained model (None if unavailable)."""
        path = self.run.model_path
        if path is None or not Path(path).is_file():
            show_error("no trained model yet: train (or stop) a run first")
            return None
        try:
            from napari_zfocus._qt.inspection_widget import InspectionWidget
        except ImportError as exc:
            show_error(f"the inspection view is not available: {exc}")
            return None
        widget = InspectionWidget(self.viewer, model_path=Path(path))
        self.viewer.window.add_dock_widget(widget, name=f"Inspect {Path(path).name}", area="right")
        return widget

    # ---------------------------------------------------------- worker events
    def _on_event(self, event: TrainEvent) -> None:
        self.run.apply(event)
        bar = self.progress_bar
        # napari's progress bar runs QApplication.processEvents() on every update, which
        # delivers the next queued training events INSIDE this slot: with a fast worker and a
        # busy GUI that nested without bound (RecursionError under a CPU hog). So: never
        # re-enter, and move the bar at most 10 times a second.
        now = time.monotonic()
        if bar is None or self._in_bar_update or now - self._bar_updated_at < BAR_INTERVAL_S:
            return
        target = event.step if self._progress_in_steps else int(event.progress * 1000)
        if target > bar.n:
            self._in_bar_update, self._bar_updated_at = True, now
            try:
                bar.update(target - bar.n)
            finally:
                self._in_bar_update = False

    def _on_errored(self, exc: BaseException) -> None:
        self.run.errored(str(exc))
        show_error(f"training failed: {exc}")

    def _on_finished(self, token: CancelToken) -> None:
        if token is not self.cancel_token:
            return  # a late signal of an earlier run
        self.run.thread_ended()
        self.worker = None
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None
        self.plot.show_history(self.run.history, force=True)
        self._refresh()

    # -------------------------------------------------------------- display
    def _on_progressed(self, _step: int) -> None:
        if self.plot.show_history(self.run.history):  # throttled: a few redraws a second
            self.status_label.setText(self.run.status_text())

    def _on_metrics(self, metrics: dict[str, float], final: bool) -> None:
        text = format_metrics(metrics, final)
        if text:
            self.metrics_label.setText(text)

    def _refresh(self, *_: Any) -> None:
        run = self.run
        self.start_button.setEnabled(run.can_start)
        self.stop_button.setEnabled(run.can_stop)
        self.resume_button.setEnabled(run.can_resume())
        self.inspect_button.setEnabled(run.has_model)
        idle = not run.is_active
        for widget in self.form_fields():
            widget.setEnabled(idle)
        self.lock_network()
        self.status_label.setText(run.status_text())
        if run.state is RunState.DONE and run.model_path is not None:
            self.status_label.setText(f"{run.status_text()}: {run.model_path}")

