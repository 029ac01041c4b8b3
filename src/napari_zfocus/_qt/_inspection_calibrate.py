"""The inspection dock's "Calibrate" tab: the model's confidence and OOD check, refitted.

A model calibrates itself at the end of training on its few validation stacks, which leaves
its confidence and its out-of-distribution threshold noisy; an older model is not
calibrated at all (README, "Calibrated confidence"). Here the user picks a folder of
annotated stacks of the model's own world that it was not trained on, and a new file name;
a worker fits the calibration (:func:`napari_zfocus.inspection.jobs.calibrate_job`), writes
the calibrated copy (weights unchanged) and the dock uses it. A view over
:class:`~napari_zfocus.inspection.inspection_state.InspectionState`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from napari_zfocus._qt._job_tab import JobTab, suggested_output
from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.inspection_state import Controls
from napari_zfocus.inspection.job_summaries import calibration_summary
from napari_zfocus.inspection.jobs import calibrate_job
from napari_zfocus.outputs import check_model_copy

if TYPE_CHECKING:
    from napari_zfocus._qt.inspection_widget import InspectionWidget
    from napari_zfocus.inspection.jobs import LoadedModel

_EXPLANATION = (
    "Make the model's confidence mean what it says (the chance of being within +/-1 um) "
    "and let it recognise images unlike its world, so live focus and acquisitions hold on "
    "them. Choose annotated stacks of the model's own world that it was NOT trained on: "
    "the more the better (60 stacks: README, 'Calibrated confidence').")


class CalibrateTab(JobTab):
    """Calibrate the loaded model on a folder of annotated held-out stacks.

    Parameters
    ----------
    dock
        The inspection dock: its state and workers.
    """

    def __init__(self, dock: InspectionWidget) -> None:
        super().__init__(dock)
        self._build_ui()
        self.state.model_changed.connect(self._suggest_output)

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        explanation = QLabel(_EXPLANATION)
        explanation.setWordWrap(True)
        layout.addWidget(explanation)
        form = QFormLayout()
        folder_row = QHBoxLayout()
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("dataset folder with annotations.csv")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._choose_folder)
        folder_row.addWidget(self.folder)
        folder_row.addWidget(browse)
        form.addRow("held-out stacks", folder_row)
        form.addRow("calibrated model", self._model_copy_row("Save the calibrated model as"))
        layout.addLayout(form)
        row = QHBoxLayout()
        self.calibrate_button = QPushButton("Calibrate")
        self.calibrate_button.clicked.connect(self.calibrate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        row.addWidget(self.calibrate_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def show_controls(self, controls: Controls) -> None:
        """Enable what may run now."""
        self.calibrate_button.setEnabled(controls.calibrate)
        self.cancel_button.setEnabled(controls.cancel_calibration)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Annotated held-out stacks",
                                                  self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _suggest_output(self, loaded: LoadedModel) -> None:
        self.output.setText(str(suggested_output(Path(loaded.path), "calibrated")))

    def calibrate(self) -> None:
        """Fit the calibration on the chosen stacks in a worker; write and use the copy."""
        try:
            out = check_model_copy(self.output.text(), overwrite=False,
                                   name="calibrated model", how="choose a new file name")
            started = self.state.start_calibration(self.folder.text(), out)
        except ZFocusError as exc:
            self.dock.show_failure(exc)
            return
        if started is None:
            return  # one runs already
        model_path, folder, out, cancel = started
        self._open_progress(1, "Calibrating model")
        self.status.setText(f"Reading the stacks of {folder.name}...")
        self.dock.start_worker(
            calibrate_job, model_path, folder, out, cancel,
            cancel=cancel.set, yielded=self._on_progress, returned=self._done,
            errored=self._failed, finished=self._finished,
        )

    def _on_progress(self, done_total: tuple[int, int]) -> None:
        done, total = done_total
        self._step_progress(done, total)
        self.status.setText(f"Read {done} of {total} images...")

    def _done(self, calibrated: Any) -> None:
        self.status.setText(calibration_summary(calibrated))
        self.state.set_calibrated(calibrated)

    def _failed(self, exc: BaseException) -> None:
        self.status.setText("Failed: nothing written.")
        self.dock.failed(exc)

    def _cancel(self) -> None:
        if self.state.cancel_calibration():
            self.status.setText("Cancelling...")

    def _finished(self) -> None:
        self._close_progress()
        self.state.calibration_finished()
