"""Dock widget: train the z-position CNN in the background, with a live loss curve.

A thin view over the core: the settings become a :class:`ModelConfig` and a
:class:`TrainConfig`, :func:`napari_zfocus.training.loop.train` runs in a napari thread
worker, and every rule about what may happen when (one run at a time, Stop only while
running, Resume only with a checkpoint) lives in the Qt-free
:class:`~napari_zfocus.training.run_state.TrainingRun`. Stop sets the core's
:class:`CancelToken`; the core then writes a checkpoint and a usable model file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_zfocus._qt._lifecycle import CloseWatcher
from napari_zfocus._qt._plot import LossPlot
from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.training.run_state import RunState, TrainingRun

if TYPE_CHECKING:
    import napari

    from napari_zfocus.training.loop import CancelToken, TrainConfig, TrainEvent

#: Settings of the paper's recipe (Wei & Roberts 2018): batch 50, Adam lr 1e-4,
#: 100,000 steps, truncated-normal init (sd 0.1), one-hot labels.
PAPER_RECIPE = {"batch": 50, "lr": 1e-4, "steps": 100_000, "init": "paper", "label_sigma_um": 0.0}


def _run_training(
    dataset: Path, model_config: ModelConfig, train_config: TrainConfig, cancel: CancelToken
) -> Any:
    """Worker body: the core generator, unchanged (plain data in, TrainEvents out)."""
    from napari_zfocus.training.loop import train

    yield from train(dataset, model_config, train_config, cancel)


class TrainingWidget(QWidget):
    """Train a model from an annotated dataset folder.

    Parameters
    ----------
    viewer
        The napari viewer (injected by npe2).
    parent
        Qt parent.
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.run = TrainingRun()
        self.worker: Any = None
        self.cancel_token: CancelToken | None = None
        self.progress_bar: progress | None = None
        self.last_event: TrainEvent | None = None
        self._closed = False
        self._build_ui()
        # Stop workers when the main window closes (the dock is not always closed first).
        # The viewer may be npe2's public-only proxy, so the window is found through Qt.
        self._close_watcher = CloseWatcher(self.shutdown)
        self._on_model_path_changed()

    # ------------------------------------------------------------------ layout
    def _build_ui(self) -> None:
        from napari_zfocus.training.loop import TrainConfig

        defaults = TrainConfig()
        start = ModelConfig.recommended()
        layout = QVBoxLayout(self)

        files = QGroupBox("Data and output")
        form = QFormLayout(files)
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("folder with annotations.csv")
        form.addRow("dataset", _with_browse(self.dataset_edit, self._choose_dataset))
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("model.zfm")
        form.addRow("model file", _with_browse(self.model_edit, self._choose_model_path))
        layout.addWidget(files)

        net = QGroupBox("Network input and z-bins")
        form = QFormLayout(net)
        self.field_spin = _float_spin(start.field_um, 1, 1000, " um", 1)
        self.pixel_spin = _float_spin(start.pixel_size_um, 0.01, 10, " um", 3)
        self.pixel_spin.setToolTip("paper: 0.24 um (60 nm pixels downsampled 4x)")
        self.bin_spin = _float_spin(start.bin_um, 0.1, 20, " um", 2)
        self.zmin_spin = _float_spin(start.z_min_um, -500, 0, " um", 1)
        self.zmax_spin = _float_spin(start.z_max_um, 0, 500, " um", 1)
        self.batchnorm_box = QCheckBox("batch-norm (not in the paper; trains faster)")
        self.batchnorm_box.setChecked(start.batchnorm)
        form.addRow("field", self.field_spin)
        form.addRow("pixel size", self.pixel_spin)
        form.addRow("bin size", self.bin_spin)
        zrow = QHBoxLayout()
        zrow.addWidget(self.zmin_spin)
        zrow.addWidget(QLabel("to"))
        zrow.addWidget(self.zmax_spin)
        form.addRow("z range", zrow)
        form.addRow(self.batchnorm_box)
        layout.addWidget(net)

        opt = QGroupBox("Training")
        form = QFormLayout(opt)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 4096)
        self.batch_spin.setValue(defaults.batch)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, 10_000_000)
        self.steps_spin.setSpecialValueText("no limit")
        self.steps_spin.setValue(0)
        self.minutes_spin = _float_spin(10.0, 0, 100_000, " min", 1)
        self.minutes_spin.setSpecialValueText("no limit")
        self.lr_spin = _float_spin(defaults.lr, 1e-7, 1.0, "", 6)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(defaults.seed)
        self.paper_box = QCheckBox("paper recipe (batch 50, lr 1e-4, 100k steps, sd 0.1 init)")
        self.paper_box.setToolTip(
            "Wei & Roberts 2018: >100 h on a GPU. Unticked: the core's faster recipe "
            "(warm-up + cosine schedule, soft labels) for CPU budgets of minutes."
        )
        form.addRow("batch size", self.batch_spin)
        form.addRow("steps", self.steps_spin)
        form.addRow("time budget", self.minutes_spin)
        form.addRow("learning rate", self.lr_spin)
        form.addRow("seed", self.seed_spin)
        form.addRow(self.paper_box)
        self.device_label = QLabel(_device_text())
        form.addRow("device", self.device_label)
        layout.addWidget(opt)

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

    # --------------------------------------------------------------- settings
    def _choose_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Annotated dataset folder")
        if folder:
            self.dataset_edit.setText(folder)

    def _choose_model_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Model file to write", self.model_edit.text(), "zfocus model (*.zfm)"
        )
        if path:
            self.model_edit.setText(path)

    def _on_dataset_changed(self, text: str) -> None:
        if text and not self.model_edit.text():
            self.model_edit.setText(str(Path(text) / "model.zfm"))

    def _on_model_path_changed(self, *_: Any) -> None:
        from napari_zfocus.training.checkpoint import checkpoint_path

        text = self.model_edit.text().strip()
        if not self.run.is_active:
            self.run.checkpoint_path = checkpoint_path(text) if text else None
        self._refresh()

    def _on_paper_toggled(self, on: bool) -> None:
        if on:
            self.batch_spin.setValue(PAPER_RECIPE["batch"])
            self.lr_spin.setValue(PAPER_RECIPE["lr"])
            self.steps_spin.setValue(PAPER_RECIPE["steps"])
            self.minutes_spin.setValue(0)
            paper = ModelConfig()
            self.pixel_spin.setValue(paper.pixel_size_um)
            self.batchnorm_box.setChecked(paper.batchnorm)
        else:
            from napari_zfocus.training.loop import TrainConfig

            defaults = TrainConfig()
            self.batch_spin.setValue(defaults.batch)
            self.lr_spin.setValue(defaults.lr)
            self.steps_spin.setValue(0)
            self.minutes_spin.setValue(10.0)
            start = ModelConfig.recommended()
            self.pixel_spin.setValue(start.pixel_size_um)
            self.batchnorm_box.setChecked(start.batchnorm)

    def model_config(self) -> ModelConfig:
        """The network settings from the form (raises :class:`ZFocusError` if impossible)."""
        return ModelConfig(
            pixel_size_um=self.pixel_spin.value(),
            field_um=self.field_spin.value(),
            bin_um=self.bin_spin.value(),
            z_min_um=self.zmin_spin.value(),
            z_max_um=self.zmax_spin.value(),
            batchnorm=self.batchnorm_box.isChecked(),
        )

    def train_config(self, resume: bool = False) -> TrainConfig:
        """The training settings from the form (validated)."""
        from napari_zfocus.training.loop import TrainConfig

        out = self.model_edit.text().strip()
        if not out:
            raise ZFocusError("choose the model file to write")
        extra = {}
        if self.paper_box.isChecked():
            extra = {"init": PAPER_RECIPE["init"], "label_sigma_um": PAPER_RECIPE["label_sigma_um"]}
        steps = self.steps_spin.value() or None
        # Enough validation points for the live curve (~20 per run), not too many.
        validation_every = min(500, max(10, steps // 20)) if steps else 100
        config = TrainConfig(
            out=Path(out),
            validation_every=validation_every,
            steps=steps,
            minutes=self.minutes_spin.value() or None,
            batch=self.batch_spin.value(),
            lr=self.lr_spin.value(),
            seed=self.seed_spin.value(),
            resume=resume,
            **extra,
        )
        config.validate()
        return config

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
        if self._closed:
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
        from napari_zfocus.training.loop import CancelToken

        self.cancel_token = CancelToken()
        self.last_event = None
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
        self._progress_in_steps = use_steps
        # Errors go to our handler (connected here, so napari does not re-raise them).
        worker = create_worker(
            _run_training, Path(dataset), mc, tc, self.cancel_token,
            _connect={
                "yielded": self._on_event,
                "returned": self._on_returned,
                "errored": self._on_errored,
                "finished": self._on_finished,
            },
            _start_thread=False,
        )
        self.worker = worker
        self._refresh()
        self._close_watcher.watch(self)  # docked by now: a button of the dock started this
        worker.start()
        return True

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
        if self._closed:
            return
        self.last_event = event
        if event.kind == "step":
            self.run.progress(event.step, loss=event.loss)
        elif event.kind == "validation":
            self.run.progress(event.step, val_error=event.metrics.get("median_abs_error_um"))
            self._show_metrics(event.metrics, final=False)
        elif event.kind == "start":
            self.run.progress(event.step)
            self.data_label.setText(event.message)
        elif event.kind == "checkpoint" and event.checkpoint_path:
            self.run.checkpoint_path = Path(event.checkpoint_path)
        if self.progress_bar is not None:
            target = event.step if self._progress_in_steps else int(event.progress * 1000)
            delta = target - self.progress_bar.n
            if delta > 0:
                self.progress_bar.update(delta)
        if self.plot.show_history(self.run.history):
            self.status_label.setText(self.run.status_text())

    def _on_returned(self, _: Any = None) -> None:
        event = self.last_event
        if event is None or event.kind not in ("done", "cancelled") or not self.run.is_active:
            return
        self.run.finish(
            model_path=Path(event.model_path) if event.model_path else None,
            checkpoint_path=Path(event.checkpoint_path) if event.checkpoint_path else None,
            metrics=event.metrics,
            cancelled=event.kind == "cancelled",
        )
        if not self._closed:
            self._show_metrics(event.metrics, final=True)

    def _on_errored(self, exc: Exception) -> None:
        if self.run.is_active:
            self.run.fail(str(exc))
        if not self._closed:
            show_error(f"training failed: {exc}")

    def _on_finished(self) -> None:
        if self.run.is_active:  # quit without a final event (viewer closing)
            self.run.fail("interrupted")
        self.worker = None
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None
        if not self._closed:
            self.plot.show_history(self.run.history, force=True)
            self._refresh()

    def _show_metrics(self, metrics: dict[str, float], final: bool) -> None:
        if not metrics:
            if final:
                self.metrics_label.setText("no validation images: no metrics")
            return
        parts = []
        if "median_abs_error_um" in metrics:
            parts.append(f"median |error| {metrics['median_abs_error_um']:.2f} um")
        if "within_1um" in metrics:
            parts.append(f"within \u00b11 um: {100 * metrics['within_1um']:.0f}%")
        if "rmse_um" in metrics:
            parts.append(f"RMSE {metrics['rmse_um']:.2f} um")
        if "n_images" in metrics:
            parts.append(f"{int(metrics['n_images'])} validation images")
        prefix = "final: " if final else "validation: "
        self.metrics_label.setText(prefix + ", ".join(parts))

    # -------------------------------------------------------------- display
    def _refresh(self) -> None:
        run = self.run
        self.start_button.setEnabled(run.can_start)
        self.stop_button.setEnabled(run.can_stop)
        self.resume_button.setEnabled(run.can_resume())
        self.inspect_button.setEnabled(run.has_model)
        idle = not run.is_active
        for widget in (self.dataset_edit, self.model_edit, self.field_spin, self.pixel_spin,
                       self.bin_spin, self.zmin_spin, self.zmax_spin, self.batch_spin,
                       self.steps_spin, self.minutes_spin, self.lr_spin, self.seed_spin,
                       self.paper_box, self.batchnorm_box):
            widget.setEnabled(idle)
        self.status_label.setText(run.status_text())
        if run.state is RunState.DONE and run.model_path is not None:
            self.status_label.setText(f"{run.status_text()}: {run.model_path}")

    # -------------------------------------------------------------- teardown
    def shutdown(self, timeout_s: float = 60.0) -> None:
        """Stop a running training (checkpoint saved by the core) and wait for its thread.

        Idempotent; called when the main window closes or the dock is closed.
        """
        if self._closed:
            return
        self._closed = True
        worker = self.worker
        if worker is not None:
            if self.cancel_token is not None:
                self.cancel_token.cancel()  # the core finishes its step and writes files
            import time

            deadline = time.monotonic() + timeout_s
            while worker.is_running and time.monotonic() < deadline:
                time.sleep(0.02)
            if worker.is_running:  # a step longer than the timeout: abort at the next yield
                worker.quit()
            from qtpy.QtCore import QThreadPool

            QThreadPool.globalInstance().waitForDone(int(timeout_s * 1000))
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        self._close_watcher.watch(self)
        super().showEvent(event)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        self.shutdown()
        super().closeEvent(event)


def _device_text() -> str:
    """What training will run on (the core picks CUDA when present)."""
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU ({torch.get_num_threads()} threads; no CUDA GPU found)"


def _float_spin(value: float, lo: float, hi: float, suffix: str, decimals: int) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    spin.setRange(lo, hi)
    spin.setSuffix(suffix)
    spin.setValue(value)
    return spin


def _with_browse(edit: QLineEdit, on_browse: Any) -> QWidget:
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit, 1)
    button = QToolButton()
    button.setText("\u2026")
    button.clicked.connect(on_browse)
    row.addWidget(button)
    return box
