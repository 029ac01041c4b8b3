"""Suggestions for the annotation dock: one worker at a time, the current stack first.

Which stack to suggest for next is the state's rule
(:meth:`~napari_zfocus.annotation.annotation_state.AnnotationState.next_to_suggest`); this part of
the dock runs :func:`~napari_zfocus.annotation.slice_suggestion.suggest_slice` in the
dock's workers (plain data in: a path, sizes and the predictor) and hands results back.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_warning
from qtpy.QtWidgets import QFileDialog

from napari_zfocus.annotation.annotation_state import AnnotationState
from napari_zfocus.annotation.slice_suggestion import SliceSuggestion, suggest_slice
from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.base_model import base_model_installed, base_model_path

if TYPE_CHECKING:
    from napari_zfocus._qt.annotation_widget import AnnotationWidget

_CLASSIC = "suggestions: bright-field sign flip"


class Suggestions:
    """The annotation dock's suggestion worker and optional model.

    Attributes
    ----------
    predictor
        The loaded model (None: classic bright-field suggestions).
    computing
        Name of the stack a worker is suggesting for (None: idle).
    """

    def __init__(self, dock: AnnotationWidget) -> None:
        self.dock = dock
        self.predictor: Any = None
        self.computing: str | None = None

    @property
    def wanted(self) -> str:
        """The source of the suggestions wanted now."""
        return "model" if self.predictor is not None else "classic"

    def offer_base_model(self) -> None:
        """Enable "Use base model" when the package has one; say why not otherwise."""
        button = self.dock.controls.base_model_button
        installed = base_model_installed()
        button.setEnabled(installed)
        if not installed:
            button.setToolTip("no base model is installed with this package")

    def use_base_model(self) -> None:
        """Suggest with the packaged base model (the slice whose predicted z is nearest 0)."""
        try:
            path = base_model_path()
        except ZFocusError as exc:  # removed since the dock opened
            show_warning(str(exc))
            return
        self.load_model(path)

    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.dock, "Model file", "", "zfocus model (*.zfm);;All (*)"
        )
        if path:
            self.load_model(path)

    def load_model(self, path: str | Path) -> None:
        """Load a model in a worker; its suggestions then replace the classic ones."""
        from napari_zfocus.model.inference import Predictor

        name, label = Path(path).name, self.dock.controls.model_label
        label.setText(f"loading {name}\u2026")

        def loaded(predictor: Any) -> None:
            self.predictor = predictor
            label.setText(f"suggestions: model {name} (z nearest 0)")
            if self.dock.state is not None:
                self.dock.state.drop_suggestions("classic")
                self.ahead()

        def failed(exc: BaseException) -> None:
            label.setText(_CLASSIC)
            self.dock.show_failure(exc, "Loading the model")

        self.dock.start_worker(Predictor.from_file, Path(path), returned=loaded, errored=failed)

    def request(self, position: int) -> None:
        """Suggest for ``position`` unless a worker is busy (it picks up the rest after)."""
        state = self.dock.state
        if state is None or self.computing is not None or self.dock.closed:
            return
        entry = state.entry(position)
        self.computing = entry.name
        self.dock.start_worker(
            suggest_slice, state.root / entry.name, entry.name, state.z_step(position),
            state.pixel_size(position), self.predictor,
            # The state travels with the result: a late answer for a dataset that was
            # replaced meanwhile (same stack names, other folder) is dropped.
            returned=lambda result: self._done(result, state),
            errored=self._failed,
        )
        self.dock.refresh()

    def _done(self, result: SliceSuggestion, asked: AnnotationState) -> None:
        self.computing = None
        state = self.dock.state
        if state is None:
            return
        position = None
        if asked is state:  # else another dataset was opened meanwhile
            position = state.accept_suggestion(
                result.name, result.index, result.source, result.note
            )
        if position is not None and position == state.current:
            unmarked = state.entry().focus_index is None
            self.dock.stack_layer.jump_if_unmoved(result.index, unmarked)
        self.dock.refresh()
        self.ahead()

    def _failed(self, exc: BaseException) -> None:
        self.computing = None
        show_warning(f"no suggestion: {exc}")
        self.dock.refresh_all()

    def ahead(self) -> None:
        """Prepare the current stack's, then the next unmarked stack's suggestion."""
        state = self.dock.state
        position = None if state is None else state.next_to_suggest(self.wanted)
        if position is not None:
            self.request(position)
