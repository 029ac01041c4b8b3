"""A tab of the inspection dock that runs one long job with a napari progress bar.

The evaluation, rescale and calibration tabs share it: the dock and its state, a progress
bar that is opened when a job starts, stepped as it reports and closed when it ends or the
dock closes, and (for the jobs that write a model copy) the row naming the new file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils import progress
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget

if TYPE_CHECKING:
    from napari_zfocus._qt.inspection_widget import InspectionWidget

__all__ = ["JobTab", "suggested_output"]


def suggested_output(model: Path, what: str) -> Path:
    """``<model>_<what>.zfm`` beside the model, numbered when it exists already."""
    candidate = model.with_name(f"{model.stem}_{what}.zfm")
    n = 2
    while candidate.exists():
        candidate = model.with_name(f"{model.stem}_{what}_{n}.zfm")
        n += 1
    return candidate


class JobTab(QWidget):
    """Base of a tab running a job in a worker of ``dock`` (its state and workers)."""

    def __init__(self, dock: InspectionWidget) -> None:
        super().__init__()
        self.dock = dock
        self.state = dock.state
        self._progress: Any = None
        dock.lifecycle.add_cleanup(self._close_progress)

    def _model_copy_row(self, title: str) -> QHBoxLayout:
        """A row with :attr:`output` (the new model file) and a "Save as..." button."""
        row = QHBoxLayout()
        self.output = QLineEdit()
        self.output.setPlaceholderText("new model file (.zfm); never replaces a file")
        save_as = QPushButton("Save as...")
        save_as.clicked.connect(lambda: self._choose_output(title))
        row.addWidget(self.output)
        row.addWidget(save_as)
        return row

    def _choose_output(self, title: str) -> None:
        # The dialog's own overwrite question is off: the dock never replaces a file.
        path, _ = QFileDialog.getSaveFileName(
            self, title, self.output.text(), "zfocus models (*.zfm)",
            options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.output.setText(path)

    def _open_progress(self, total: int, desc: str) -> None:
        self._close_progress()
        self._progress = progress(total=total, desc=desc)

    def _step_progress(self, done: int, total: int, desc: str | None = None) -> None:
        pbar = self._progress
        if pbar is None:
            return
        if desc is not None:
            pbar.set_description(desc)
        pbar.total = max(int(total), 1)
        pbar.n = int(done)
        pbar.refresh()

    def _close_progress(self) -> None:
        if self._progress is not None:
            with contextlib.suppress(RuntimeError):  # its Qt widget may be gone already
                self._progress.close()
            self._progress = None
