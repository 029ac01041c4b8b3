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

from typing import Any

from qtpy.QtWidgets import QFormLayout, QLineEdit, QVBoxLayout

from napari_zfocus._qt._forms import folder_row
from napari_zfocus._qt._job_tab import ModelCopyTab
from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.inspection_state import Controls
from napari_zfocus.inspection.job_summaries import calibration_summary
from napari_zfocus.inspection.jobs import calibrate_job

_EXPLANATION = (
    "Make the model's confidence mean what it says (the chance of being within +/-1 um) "
    "and let it recognise images unlike its world, so live focus and acquisitions hold on "
    "them. Choose annotated stacks of the model's own world that it was NOT trained on: "
    "the more the better (60 stacks: README, 'Calibrated confidence').")


class CalibrateTab(ModelCopyTab):
    """Calibrate the loaded model on a folder of annotated held-out stacks.

    Parameters
    ----------
    dock
        The inspection dock: its state and workers.
    """

    what = "calibrated"
    unit = "images"
    explanation = _EXPLANATION

    def _build_form(self, layout: QVBoxLayout) -> None:
        form = QFormLayout()
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("dataset folder with annotations.csv")
        form.addRow("held-out stacks", folder_row(self.folder, "Annotated held-out stacks"))
        form.addRow("calibrated model", self._model_copy_row("Save the calibrated model as"))
        layout.addLayout(form)
        self._add_run_row(layout, "Calibrate", self.calibrate)
        self.calibrate_button = self.run_button

    def show_controls(self, controls: Controls) -> None:
        """Enable what may run now."""
        self.calibrate_button.setEnabled(controls.calibrate)
        self.cancel_button.setEnabled(controls.cancel_calibration)

    def calibrate(self) -> None:
        """Fit the calibration on the chosen stacks in a worker; write and use the copy."""
        try:
            started = self.state.start_calibration(self.folder.text(), self._checked_output())
        except ZFocusError as exc:
            self.dock.show_failure(exc)
            return
        if started is None:
            return  # one runs already
        model_path, folder, out, cancel = started
        self._start(calibrate_job, model_path, folder, out, cancel=cancel, total=1,
                    desc="Calibrating model", status=f"Reading the stacks of {folder.name}...")

    def _summary(self, result: Any) -> str:
        return calibration_summary(result)

    def _use(self, result: Any) -> None:
        self.state.set_calibrated(result)

    def _cancel_job(self) -> bool:
        return self.state.cancel_calibration()

    def _job_finished(self) -> None:
        self.state.calibration_finished()
