"""A tab of the inspection dock that runs one long job with a napari progress bar.

The evaluation and the rescale tabs share it: the dock and its state, and a progress bar
that is opened when a job starts, stepped as it reports and closed when it ends or the dock
closes.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from napari.utils import progress
from qtpy.QtWidgets import QWidget

if TYPE_CHECKING:
    from napari_zfocus._qt.inspection_widget import InspectionWidget

__all__ = ["JobTab"]


class JobTab(QWidget):
    """Base of a tab running a job in a worker of ``dock`` (its state and workers)."""

    def __init__(self, dock: InspectionWidget) -> None:
        super().__init__()
        self.dock = dock
        self.state = dock.state
        self._progress: Any = None
        dock.lifecycle.add_cleanup(self._close_progress)

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
