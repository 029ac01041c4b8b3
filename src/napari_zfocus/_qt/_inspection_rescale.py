"""The inspection dock's "Rescale" tab: the model's distance scale from unannotated stacks.

After a change of the condenser (Koehler) aperture or the wavelength a model reads
distances too short or too long, in the right direction and right at focus. The user
picks a few z-stacks taken at the new setting (no focus marked) and a new file name; a
worker measures the model's gain on them
(:func:`napari_zfocus.inspection.jobs.rescale_job`), writes the rescaled copy and the dock
uses it. A model trained with a reference condenser aperture takes the microscope's
aperture instead (:func:`~napari_zfocus.inspection.jobs.aperture_rescale_job`). A view over
:class:`~napari_zfocus.inspection.inspection_state.InspectionState`.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QPushButton,
    QVBoxLayout,
)

from napari_zfocus._qt._forms import float_spin
from napari_zfocus._qt._job_tab import ModelCopyTab
from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.inspection_state import Controls
from napari_zfocus.inspection.job_summaries import rescale_summary
from napari_zfocus.inspection.jobs import aperture_rescale_job, rescale_job

_EXPLANATION = (
    "Changed the condenser aperture or the wavelength? The model then reads distances "
    "too short or too long. Add 1-3 z-stacks taken at the new setting, spanning focus "
    "+/- 8 um or more: no annotation is needed, the slices' spacing is the ruler. A model "
    "trained with a reference aperture needs only the condenser aperture.")
_STACK_FILES = "z-stacks (*.tif *.tiff *.ome.tif);;All files (*)"


class RescaleTab(ModelCopyTab):
    """Rescale the loaded model's distances from unannotated stacks of a new setting.

    Parameters
    ----------
    dock
        The inspection dock: its state and workers.
    """

    what = "rescaled"
    unit = "stacks"
    explanation = _EXPLANATION

    def _build_form(self, layout: QVBoxLayout) -> None:
        self.stacks = QListWidget()
        self.stacks.setMinimumHeight(90)
        self.stacks.setMaximumHeight(150)
        layout.addWidget(self.stacks)
        row = QHBoxLayout()
        add = QPushButton("Add stacks...")
        add.clicked.connect(self._choose_stacks)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.stacks.clear)
        row.addWidget(add)
        row.addWidget(clear)
        layout.addLayout(row)
        form = QFormLayout()
        self.z_step = float_spin(0.0, 100.0, 0.0, step=0.1, decimals=3, suffix=" um",
                                 special="from file",
                                 tooltip="Distance between slices; 'from file' reads it from "
                                         "each stack's metadata")
        form.addRow("z-step", self.z_step)
        self.pixel_size = float_spin(0.0, 100.0, 0.0, step=0.01, decimals=4, suffix=" um/px",
                                     special="from file",
                                     tooltip="Pixel size of the stacks; 'from file' reads it "
                                             "from each stack's metadata")
        form.addRow("pixel size", self.pixel_size)
        self.condenser_na = float_spin(
            0.0, 1.6, 0.0, step=0.05, decimals=2, special="from stacks",
            tooltip="For a model trained with a reference condenser aperture (the training "
                    "dock's 'apertures', --reference-condenser-na): the microscope's "
                    "condenser aperture sets its scale, no stack needed. 'from stacks' "
                    "measures the scale on the stacks listed above")
        form.addRow("condenser aperture", self.condenser_na)
        form.addRow("rescaled model", self._model_copy_row("Save the rescaled model as"))
        layout.addLayout(form)
        self._add_run_row(layout, "Rescale", self.rescale)
        self.rescale_button = self.run_button

    def show_controls(self, controls: Controls) -> None:
        """Enable what may run now."""
        self.rescale_button.setEnabled(controls.rescale)
        self.cancel_button.setEnabled(controls.cancel_rescale)

    def stack_paths(self) -> list[str]:
        """The stacks listed, in order."""
        return [self.stacks.item(i).text() for i in range(self.stacks.count())]

    def add_stacks(self, paths: list[str]) -> None:
        """List ``paths`` (each once)."""
        listed = set(self.stack_paths())
        for path in paths:
            if path not in listed:
                self.stacks.addItem(path)
                listed.add(path)

    def _choose_stacks(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Z-stacks at the new setting", "",
                                                _STACK_FILES)
        self.add_stacks(paths)

    def rescale(self) -> None:
        """Measure the model's gain on the listed stacks in a worker; write and use the copy."""
        aperture = self.condenser_na.value() or None  # 0 shows "from stacks"
        try:
            started = self.state.start_rescale(self.stack_paths(), self._checked_output(),
                                               condenser_na=aperture)
        except ZFocusError as exc:
            self.dock.show_failure(exc)
            return
        if started is None:
            return  # one runs already
        model_path, stacks, out, cancel = started
        if aperture is not None:
            self._start(aperture_rescale_job, self.state.predictor, model_path, aperture, out,
                        cancel=cancel, total=1, desc="Rescaling model",
                        status=f"Setting the model to condenser aperture {aperture:g}...")
            return
        # 0 shows "from file"
        z_step, pixel_size = self.z_step.value() or None, self.pixel_size.value() or None
        self._start(rescale_job, self.state.predictor, model_path, stacks, z_step, pixel_size,
                    out, cancel=cancel, total=len(stacks), desc="Rescaling model",
                    status=f"Reading {len(stacks)} stacks...")

    def _summary(self, result: Any) -> str:
        return rescale_summary(result)

    def _use(self, result: Any) -> None:
        self.state.set_rescaled(result)

    def _cancel_job(self) -> bool:
        return self.state.cancel_rescale()

    def _job_finished(self) -> None:
        self.state.rescale_finished()
