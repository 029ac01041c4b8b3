"""The inspection dock's "Rescale" tab: the model's distance scale from unannotated stacks.

After a change of the condenser (Koehler) aperture or the wavelength a model reads
distances too short or too long, in the right direction and right at focus. The user
picks a few z-stacks taken at the new setting (no focus marked) and a new file name; a
worker measures the model's gain on them
(:func:`napari_zfocus.inspection.jobs.rescale_job`), writes the rescaled copy and the dock
uses it. A view over :class:`~napari_zfocus.inspection.inspection_state.InspectionState`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
)

from napari_zfocus._qt._forms import float_spin
from napari_zfocus._qt._job_tab import JobTab, suggested_output
from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.inspection_state import Controls
from napari_zfocus.inspection.job_summaries import rescale_summary
from napari_zfocus.inspection.jobs import rescale_job
from napari_zfocus.outputs import check_model_copy

if TYPE_CHECKING:
    from napari_zfocus._qt.inspection_widget import InspectionWidget
    from napari_zfocus.inspection.jobs import LoadedModel

_EXPLANATION = (
    "Changed the condenser aperture or the wavelength? The model then reads distances "
    "too short or too long. Add 1-3 z-stacks taken at the new setting, spanning focus "
    "+/- 8 um or more: no annotation is needed, the slices' spacing is the ruler.")
_STACK_FILES = "z-stacks (*.tif *.tiff *.ome.tif);;All files (*)"


class RescaleTab(JobTab):
    """Rescale the loaded model's distances from unannotated stacks of a new setting.

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
        form.addRow("rescaled model", self._model_copy_row("Save the rescaled model as"))
        layout.addLayout(form)
        row = QHBoxLayout()
        self.rescale_button = QPushButton("Rescale")
        self.rescale_button.clicked.connect(self.rescale)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        row.addWidget(self.rescale_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)

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

    def _suggest_output(self, loaded: LoadedModel) -> None:
        self.output.setText(str(suggested_output(Path(loaded.path), "rescaled")))

    def rescale(self) -> None:
        """Measure the model's gain on the listed stacks in a worker; write and use the copy."""
        try:
            out = check_model_copy(self.output.text(), overwrite=False,
                                   name="rescaled model", how="choose a new file name")
            started = self.state.start_rescale(self.stack_paths(), out)
        except ZFocusError as exc:
            self.dock.show_failure(exc)
            return
        if started is None:
            return  # one runs already
        model_path, stacks, out, cancel = started
        # 0 shows "from file"
        z_step, pixel_size = self.z_step.value() or None, self.pixel_size.value() or None
        self._open_progress(len(stacks), "Rescaling model")
        self.status.setText(f"Reading {len(stacks)} stacks...")
        self.dock.start_worker(
            rescale_job, self.state.predictor, model_path, stacks, z_step, pixel_size, out,
            cancel,
            cancel=cancel.set, yielded=self._on_progress, returned=self._done,
            errored=self._failed, finished=self._finished,
        )

    def _on_progress(self, done_total: tuple[int, int]) -> None:
        done, total = done_total
        self._step_progress(done, total)
        self.status.setText(f"Read {done} of {total} stacks...")

    def _done(self, rescaled: Any) -> None:
        self.status.setText(rescale_summary(rescaled))
        self.state.set_rescaled(rescaled)

    def _failed(self, exc: BaseException) -> None:
        self.status.setText("Failed: nothing written.")
        self.dock.failed(exc)

    def _cancel(self) -> None:
        if self.state.cancel_rescale():
            self.status.setText("Cancelling...")

    def _finished(self) -> None:
        self._close_progress()
        self.state.rescale_finished()
