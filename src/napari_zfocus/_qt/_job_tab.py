"""A tab of the inspection dock that runs one long job with a napari progress bar.

The evaluation, rescale and calibration tabs share it: the dock and its state, a progress
bar that is opened when a job starts, stepped as it reports and closed when it ends or the
dock closes. :class:`ModelCopyTab` adds what the rescale and calibration tabs share: their
job writes a copy of the loaded model under a new name, which the dock then uses.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils import progress
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_zfocus.outputs import check_model_copy

if TYPE_CHECKING:
    from collections.abc import Callable

    from napari_zfocus._qt.inspection_widget import InspectionWidget
    from napari_zfocus.inspection.jobs import LoadedModel

__all__ = ["JobTab", "ModelCopyTab", "suggested_output"]


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


class ModelCopyTab(JobTab):
    """Base of a tab whose job writes a copy of the loaded model, then loaded by the dock.

    Subclasses set :attr:`what`, :attr:`unit` and :attr:`explanation`, build their form in
    :meth:`_build_form` (with :meth:`_model_copy_row` and :meth:`_add_run_row`), start the
    job with :meth:`_start` and give the hooks :meth:`_summary`, :meth:`_use`,
    :meth:`_cancel_job` and :meth:`_job_finished` (the state's side of the job).
    """

    #: What the copy is ("rescaled"): the suggested file name and the field's name.
    what = ""
    #: What the job counts as it reports ("stacks").
    unit = ""
    #: The paragraph at the top of the tab: when and how to use it.
    explanation = ""

    def __init__(self, dock: InspectionWidget) -> None:
        super().__init__(dock)
        layout = QVBoxLayout(self)
        explanation = QLabel(self.explanation)
        explanation.setWordWrap(True)
        layout.addWidget(explanation)
        self._build_form(layout)
        self.state.model_changed.connect(self._suggest_output)

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

    def _add_run_row(self, layout: QVBoxLayout, label: str, run: Callable[[], None]) -> None:
        """The run and cancel buttons, and the status line below them."""
        row = QHBoxLayout()
        self.run_button = QPushButton(label)
        self.run_button.clicked.connect(run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def _suggest_output(self, loaded: LoadedModel) -> None:
        self.output.setText(str(suggested_output(Path(loaded.path), self.what)))

    def _checked_output(self) -> Path:
        """The new file's path; ``ZFocusError`` when it exists or cannot be written."""
        return check_model_copy(self.output.text(), overwrite=False,
                                name=f"{self.what} model", how="choose a new file name")

    def _start(self, job: Callable[..., Any], *args: Any, cancel: Any, total: int,
               desc: str, status: str) -> None:
        """Run ``job(*args, cancel)`` in a worker of the dock, with progress and cancel."""
        self._open_progress(total, desc)
        self.status.setText(status)
        self.dock.start_worker(
            job, *args, cancel,
            cancel=cancel.set, yielded=self._on_progress, returned=self._done,
            errored=self._failed, finished=self._finished,
        )

    def _on_progress(self, done_total: tuple[int, int]) -> None:
        done, total = done_total
        self._step_progress(done, total)
        self.status.setText(f"Read {done} of {total} {self.unit}...")

    def _done(self, result: Any) -> None:
        self.status.setText(self._summary(result))
        self._use(result)

    def _failed(self, exc: BaseException) -> None:
        self.status.setText("Failed: nothing written.")
        self.dock.failed(exc)

    def _cancel(self) -> None:
        if self._cancel_job():
            self.status.setText("Cancelling...")

    def _finished(self) -> None:
        self._close_progress()
        self._job_finished()

    # -- the subclass's side ---------------------------------------------------------------

    def _build_form(self, layout: QVBoxLayout) -> None:
        """Add the tab's fields, :meth:`_model_copy_row` and :meth:`_add_run_row`."""
        raise NotImplementedError

    def _summary(self, result: Any) -> str:
        """One status line for the job's result (None: cancelled)."""
        raise NotImplementedError

    def _use(self, result: Any) -> None:
        """Hand the result to the state (which loads the copy)."""
        raise NotImplementedError

    def _cancel_job(self) -> bool:
        """Ask the state to cancel the job; False if none runs."""
        raise NotImplementedError

    def _job_finished(self) -> None:
        """Tell the state the job ended."""
        raise NotImplementedError
