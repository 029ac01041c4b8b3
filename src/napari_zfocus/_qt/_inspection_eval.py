"""The inspection dock's "Evaluate" tab: a dataset run with progress, cancel and export.

Shows the confusion heatmap P(predicted | true) (paper Fig. 3a), the error histogram, the
error vs true z and the metrics table (the CNN beside its baselines,
:mod:`napari_zfocus.inspection.metrics_table`). A view over
:class:`~napari_zfocus.inspection.inspection_state.InspectionState`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
)

from napari_zfocus._qt._forms import folder_row
from napari_zfocus._qt._job_tab import JobTab
from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.inspection_state import Controls
from napari_zfocus.inspection.job_summaries import evaluation_summary, progress_text
from napari_zfocus.inspection.jobs import evaluate_job
from napari_zfocus.inspection.metrics_table import METRIC_ROWS, metrics_table, write_metrics_csv

if TYPE_CHECKING:
    from napari_zfocus._qt.inspection_widget import InspectionWidget


def _embed(figure: Any, height_px: int = 300) -> FigureCanvasQTAgg:
    """A Qt canvas showing a core (Agg) figure."""
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(height_px)
    return canvas


class EvaluationTab(JobTab):
    """Evaluate the loaded model on an annotated dataset folder.

    Parameters
    ----------
    dock
        The inspection dock: its state and workers.
    """

    def __init__(self, dock: InspectionWidget) -> None:
        super().__init__(dock)
        self.figures: dict[str, Any] = {}
        self._build_ui()
        self.state.evaluation_changed.connect(self._show_result)

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        self.dataset_path = QLineEdit()
        self.dataset_path.setPlaceholderText("dataset folder (annotations.csv + stacks)")
        layout.addLayout(folder_row(self.dataset_path, "Dataset folder"))
        row = QHBoxLayout()
        self.baselines_box = QCheckBox("focus-score baselines")
        self.baselines_box.setChecked(True)
        self.eval_button = QPushButton("Evaluate")
        self.eval_button.clicked.connect(self.evaluate)
        self.eval_cancel = QPushButton("Cancel")
        self.eval_cancel.clicked.connect(self._cancel)
        for widget in (self.baselines_box, self.eval_button, self.eval_cancel):
            row.addWidget(widget)
        layout.addLayout(row)
        self.eval_status = QLabel("")
        self.eval_status.setWordWrap(True)
        layout.addWidget(self.eval_status)
        self.metrics = QTableWidget(0, 0)
        self.metrics.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.metrics.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.metrics.setMinimumHeight(170)
        layout.addWidget(self.metrics)
        self.plot_tabs = QTabWidget()
        self.plot_tabs.setMinimumHeight(320)
        layout.addWidget(self.plot_tabs, 1)
        row = QHBoxLayout()
        self.export_button = QPushButton("Export PNG + CSV...")
        self.export_button.clicked.connect(self._choose_export)
        row.addWidget(self.export_button)
        layout.addLayout(row)

    def show_controls(self, controls: Controls) -> None:
        """Enable what may run now."""
        self.eval_button.setEnabled(controls.evaluate)
        self.eval_cancel.setEnabled(controls.cancel_evaluation)
        self.export_button.setEnabled(controls.export)

    def evaluate(self) -> None:
        """Evaluate the model on the dataset folder (in a worker with progress and cancel)."""
        try:
            started = self.state.start_evaluation(self.dataset_path.text())
        except ZFocusError as exc:
            self.dock.show_failure(exc)
            return
        if started is None:
            return  # one runs already
        folder, cancel = started
        self._open_progress(0, "Evaluating model")
        self.eval_status.setText("Evaluating...")
        self.dock.start_worker(
            evaluate_job, self.state.predictor, folder, self.baselines_box.isChecked(), cancel,
            cancel=cancel.set, yielded=self._on_progress, returned=self.state.set_evaluation,
            errored=self.dock.failed, finished=self._finished,
        )

    def _on_progress(self, event: Any) -> None:
        self._step_progress(event.done, event.total, f"Evaluating ({event.stage})")
        self.eval_status.setText(progress_text(event))

    def _cancel(self) -> None:
        if self.state.cancel_evaluation():
            self.eval_status.setText("Cancelling...")

    def _finished(self) -> None:
        self._close_progress()
        self.state.evaluation_finished()

    def _show_result(self, result: Any) -> None:
        from napari_zfocus.inspection import plots

        self.eval_status.setText(evaluation_summary(result))
        self._fill_table(*metrics_table(result))
        t = result.per_image["z_true_um"].astype(float)
        p = result.per_image["z_pred_um"].astype(float)
        base_err = {k: v - t for k, v in result.baseline_predictions.items()}
        self.figures = {
            "Confusion": plots.confusion_heatmap(result.confusion, result.bin_centres_um),
            "Error histogram": plots.error_histogram(p - t, baselines=base_err),
            "Error vs true z": plots.error_vs_true_z(t, p, baselines=result.baseline_predictions),
        }
        while self.plot_tabs.count():
            page = self.plot_tabs.widget(0)
            self.plot_tabs.removeTab(0)
            page.deleteLater()
        for name, fig in self.figures.items():
            self.plot_tabs.addTab(_embed(fig), name)

    def _fill_table(self, methods: list[str], headers: list[str], cells: list[list[str]]) -> None:
        table = self.metrics
        table.clear()
        table.setRowCount(len(methods))
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
        table.setVerticalHeaderLabels(methods)
        for c, (_, _, description) in enumerate(METRIC_ROWS):
            table.horizontalHeaderItem(c).setToolTip(description)
        for r, row in enumerate(cells):
            for c, text in enumerate(row):
                table.setItem(r, c, QTableWidgetItem(text))

    def _choose_export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export evaluation to folder")
        if folder:
            self.export(folder)

    def export(self, folder: str | Path) -> list[Path]:
        """Write the evaluation plots (PNG), per-image/confusion/metrics tables (CSV)."""
        from napari_zfocus.inspection.plots import save_evaluation_plots

        try:
            self.state.check_export()
            written = save_evaluation_plots(self.state.result, folder)
            written.append(write_metrics_csv(self.state.result, Path(folder) / "metrics.csv"))
        except ZFocusError as exc:
            self.dock.show_failure(exc)
            return []
        except OSError as exc:
            self.dock.show_failure(
                ZFocusError(f"{folder}: cannot write the evaluation ({exc.strerror or exc})"))
            return []
        show_info(f"Wrote {len(written)} files to {folder}")
        return written
