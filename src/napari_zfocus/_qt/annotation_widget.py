"""Dock widget: mark the in-focus slice of many z-stacks quickly.

A thin view over :class:`~napari_zfocus.annotation.annotation_state.AnnotationState`, which holds
the marks, writes ``annotations.csv`` atomically after every change, keeps the undo
history, decides which stack to suggest for next, and announces every change with a
signal this dock follows. The dock shows one stack at a time in a single Image layer
(:class:`~napari_zfocus._qt._stack_layer.StackLayer`), computes suggestions in its own
workers and binds the keys:

==========  ==============================================
``f``       mark the current slice as in focus
``Enter``   confirm the suggestion
``n``       next unmarked stack
``u``       undo (also ``Ctrl-Z``)
wheel       scroll through z (option; napari's Ctrl+wheel and arrow keys work too)
==========  ==============================================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QFileDialog, QListWidgetItem, QVBoxLayout, QWidget

from napari_zfocus._qt._annotation_controls import AnnotationControls
from napari_zfocus._qt._annotation_suggestions import Suggestions
from napari_zfocus._qt._dock import ZFocusDock
from napari_zfocus._qt._stack_layer import StackLayer
from napari_zfocus._qt._viewer import text_overlay
from napari_zfocus.annotation import captions
from napari_zfocus.annotation.annotation_state import AnnotationState
from napari_zfocus.annotation.stacks import StackToWrite, safe_name, write_stacks
from napari_zfocus.data import read_stack
from napari_zfocus.errors import ZFocusError

if TYPE_CHECKING:
    import napari

#: Keys bound on the viewer while the widget lives: key -> method name.
_KEYS = {
    "f": "mark_current_slice",
    # Not "c": napari's image layers use it for auto-contrast, and layer keys win.
    "Enter": "confirm_suggestion",
    "n": "next_unmarked",
    "u": "undo",
    "Control-Z": "undo",
}


class AnnotationWidget(ZFocusDock):
    """Annotate the in-focus slice of z-stacks (one key per stack).

    Parameters
    ----------
    viewer
        The napari viewer (injected by npe2; may be its public-only proxy).
    parent
        Qt parent.
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(viewer, parent)
        self.state: AnnotationState | None = None
        self.stack_layer = StackLayer(viewer)
        self.controls = AnnotationControls()
        self.suggestions = Suggestions(self)
        QVBoxLayout(self).addWidget(self.controls)
        self._connect_controls()
        self._hook_viewer()
        self.refresh_all()

    @property
    def layer(self) -> Any:
        """The annotation Image layer (None before a stack is shown)."""
        return self.stack_layer.layer

    def current_slice(self) -> int:
        """Index of the slice shown in the annotation layer (0 without a stack)."""
        return self.stack_layer.current_slice()

    def go_to_slice(self, index: int) -> None:
        """Move the z slider to slice ``index`` of the annotation layer."""
        self.stack_layer.go_to_slice(index)

    def _connect_controls(self) -> None:
        c = self.controls
        for signal, slot in (
            (c.open_folder_button.clicked, self._choose_folder),
            (c.open_files_button.clicked, self._choose_files),
            (c.use_layers_button.clicked, lambda: self.use_image_layers()),
            (c.stack_list.currentRowChanged, self._on_row_changed),
            (c.prev_button.clicked, lambda: self._step_stack(-1)),
            (c.next_button.clicked, lambda: self._step_stack(+1)),
            (c.next_unmarked_button.clicked, lambda: self.next_unmarked()),
            (c.mark_button.clicked, lambda: self.mark_current_slice()),
            (c.confirm_button.clicked, lambda: self.confirm_suggestion()),
            (c.undo_button.clicked, lambda: self.undo()),
            (c.unmark_button.clicked, lambda: self.unmark()),
            (c.z_step_spin.editingFinished, self._on_sizes_edited),
            (c.pixel_size_spin.editingFinished, self._on_sizes_edited),
            (c.wheel_box.toggled, self.stack_layer.set_wheel_scrolls_z),
            (c.model_button.clicked, self.suggestions.choose_model),
            (c.base_model_button.clicked, self.suggestions.use_base_model),
        ):
            signal.connect(slot)
        self.suggestions.offer_base_model()

    def _hook_viewer(self) -> None:
        """Keys, z slider and wheel; all given back to the viewer when the dock closes."""
        viewer, guard, cleanup = self.viewer, self.lifecycle.guard, self.lifecycle.add_cleanup
        for key, method in _KEYS.items():
            viewer.bind_key(key, _KeyAction(self, method), overwrite=True)
        cleanup(lambda: _unbind_keys(viewer))
        on_step = guard(self._refresh_overlay)
        viewer.dims.events.current_step.connect(on_step)
        cleanup(lambda: viewer.dims.events.current_step.disconnect(on_step))
        on_wheel = guard(self._on_wheel)
        viewer.mouse_wheel_callbacks.append(on_wheel)
        cleanup(lambda: viewer.mouse_wheel_callbacks.remove(on_wheel))
        self.stack_layer.set_wheel_scrolls_z(self.controls.wheel_box.isChecked())
        cleanup(lambda: self.stack_layer.set_wheel_scrolls_z(False))  # napari's zoom back

    # ---------------------------------------------------------------- opening
    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder")
        if folder:
            self.open_folder(folder)

    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Z-stacks to annotate", "", "TIFF stacks (*.tif *.tiff)"
        )
        if files:
            self.open_paths(files)

    def open_folder(self, folder: str | Path) -> bool:
        """Open a dataset folder (with or without ``annotations.csv``). False on error."""
        return self._open(lambda: AnnotationState.open_folder(folder))

    def open_paths(self, paths: list[str | Path], root: str | Path | None = None) -> bool:
        """Annotate chosen stack files; ``annotations.csv`` goes to ``root`` (their folder)."""
        return self._open(lambda: AnnotationState.from_paths(paths, root))

    def _open(self, make: Callable[[], AnnotationState]) -> bool:
        try:
            state = make()
        except ZFocusError as exc:
            show_error(str(exc))
            return False
        self.state = state
        state.entry_changed.connect(self._on_entry_changed)
        state.selected.connect(lambda _: self.refresh())
        self.controls.folder_label.setText(f"{state.root}  (annotations.csv is saved here)")
        self._rebuild_list()
        first = state.next_unmarked(start=-1)
        self.show_stack(0 if first is None else first)
        return True

    def use_image_layers(self, folder: str | Path | None = None) -> bool:
        """Annotate the 3-D Image layers of the viewer.

        Layers read from files are annotated in place (CSV next to them). Otherwise every
        layer is written as an ImageJ TIFF into ``folder`` (asked for if not given), in a
        worker, so the dataset is self-contained in the interchange format.
        """
        layers = [
            layer for layer in self.viewer.layers
            if layer.__class__.__name__ == "Image" and layer is not self.layer
            and layer.ndim == 3 and not getattr(layer, "rgb", False)
        ]
        if not layers:
            show_warning("no 3-D Image layers to annotate: open z-stacks first")
            return False
        sources = [getattr(layer.source, "path", None) for layer in layers]
        if all(p and Path(p).is_file() for p in sources):
            ok = self.open_paths(sources)  # type: ignore[arg-type]
            for layer in layers if ok else ():
                layer.visible = False
            return ok
        if folder is None:
            folder = QFileDialog.getExistingDirectory(
                self, "Folder to save the stacks and annotations.csv"
            )
            if not folder:
                return False
        # Plain data for the worker: arrays and numbers, never the layers.
        jobs = [StackToWrite(Path(folder) / f"{safe_name(layer.name)}.tif", layer.data,
                             float(layer.scale[-3]), float(layer.scale[-1])) for layer in layers]
        for layer in layers:
            layer.visible = False
        self.start_worker(
            write_stacks, jobs, progress={"total": len(jobs), "desc": "saving stacks"},
            returned=lambda paths: self.open_paths(paths, folder),
        )
        return True

    # --------------------------------------------------------------- showing
    def show_stack(self, position: int) -> None:
        """Open stack ``position`` in the annotation layer and jump to its mark/suggestion."""
        state = self.state
        if state is None:
            return
        entry = state.select(position)
        try:
            stack = read_stack(
                state.stack_path(), z_step_um=entry.z_step_um, pixel_size_um=entry.pixel_size_um
            )
            middle = stack.slice(stack.n_slices // 2)
        except ZFocusError as exc:
            show_error(str(exc))
            self.refresh_all()
            return
        state.opened(stack.n_slices, stack.z_step_um, stack.pixel_size_um)
        self.stack_layer.show(stack, middle, state.z_step(), state.pixel_size())
        target = entry.focus_index if entry.focus_index is not None else entry.suggested_index
        self.stack_layer.open_at(stack.n_slices // 2 if target is None else target)
        self.refresh_all()
        if state.needs_suggestion(position, self.suggestions.wanted):
            self.suggestions.request(position)

    # ---------------------------------------------------------------- actions
    def mark_current_slice(self) -> None:
        """Mark the shown slice as in focus (key ``f``)."""
        self._act(lambda s: s.mark(self.current_slice()), advance=True)

    def confirm_suggestion(self) -> None:
        """Mark the suggested slice (key ``Enter``)."""
        self._act(lambda s: s.confirm_suggestion(), advance=True)

    def unmark(self) -> None:
        """Remove the current stack's mark."""
        self._act(lambda s: s.unmark())

    def undo(self) -> None:
        """Revert the last change (key ``u``); shows the stack it touched."""
        state = self.state
        if state is None:
            return
        before = state.current
        try:
            position = state.undo()
        except ZFocusError as exc:
            show_error(str(exc))
            return
        if position is None:
            show_info("nothing to undo")
        elif position != before:
            self.show_stack(position)

    def next_unmarked(self) -> None:
        """Go to the next stack without a mark (key ``n``)."""
        if self.state is None:
            return
        position = self.state.next_unmarked()
        if position is None:
            show_info(f"all {len(self.state.entries)} stacks are marked")
            return
        self.show_stack(position)

    def _act(self, change: Callable[[AnnotationState], Any], advance: bool = False) -> None:
        state = self.state
        if state is None or self.layer is None:
            show_warning("open a dataset folder or stacks first")
            return
        try:
            change(state)
        except ZFocusError as exc:
            show_error(str(exc))
            return
        if advance and self.controls.advance_box.isChecked():
            position = state.next_unmarked()
            if position is not None:
                self.show_stack(position)

    def _step_stack(self, delta: int) -> None:
        if self.state is None or not self.state.entries:
            return
        current = self.state.current or 0
        self.show_stack((current + delta) % len(self.state.entries))

    def _on_row_changed(self, row: int) -> None:
        if self.state is not None and row >= 0 and row != self.state.current:
            self.show_stack(row)

    def _on_sizes_edited(self) -> None:
        state, c = self.state, self.controls
        if state is None or state.current is None:
            return
        index = self.current_slice()
        try:
            state.set_sizes(c.z_step_spin.value(), c.pixel_size_spin.value())
        except ZFocusError as exc:
            show_error(str(exc))
            return
        # Keep the same slice under the new z scale.
        self.stack_layer.set_scale(state.z_step(), state.pixel_size(), index)

    # ---------------------------------------------------------------- refresh
    def _rebuild_list(self) -> None:
        stack_list = self.controls.stack_list
        stack_list.blockSignals(True)
        stack_list.clear()
        for _ in self.state.entries if self.state else []:
            stack_list.addItem(QListWidgetItem())
        stack_list.blockSignals(False)

    def _on_entry_changed(self, position: int) -> None:
        self._refresh_item(position)
        self.refresh()

    def _refresh_item(self, position: int) -> None:
        item = self.controls.stack_list.item(position)
        if self.state is None or item is None:
            return
        text, colour = captions.entry_label(self.state.entries[position])
        item.setText(text)
        item.setForeground(QColor(colour))

    def refresh_all(self) -> None:
        for position in range(len(self.state.entries) if self.state else 0):
            self._refresh_item(position)
        self.refresh()

    def refresh(self) -> None:
        c, state = self.controls, self.state
        has = state is not None and state.current is not None and self.layer is not None
        for field in c.current_stack_fields():
            field.setEnabled(has)
        c.undo_button.setEnabled(state is not None and state.can_undo)
        if state is None:
            return
        c.counts_label.setText(state.counts_text())
        c.progress_bar.setMaximum(max(1, len(state.entries)))
        c.progress_bar.setValue(state.n_marked)
        if state.current is None:
            return
        c.stack_list.blockSignals(True)
        c.stack_list.setCurrentRow(state.current)
        c.stack_list.blockSignals(False)
        entry = state.entry()
        c.confirm_button.setEnabled(has and entry.suggested_index is not None)
        c.unmark_button.setEnabled(has and entry.focus_index is not None)
        c.stack_label.setText(captions.stack_title(state))
        sizes = ((c.z_step_spin, state.z_step()), (c.pixel_size_spin, state.pixel_size()))
        for spin, value in sizes:
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        computing = self.suggestions.computing == entry.name
        c.suggestion_label.setText(captions.suggestion_text(entry, computing))
        self._refresh_overlay()

    def _refresh_overlay(self, *_: Any) -> None:
        state = self.state
        if state is None or state.current is None or self.layer is None:
            return
        entry = state.entry()
        overlay = text_overlay(self.viewer)
        overlay.visible = True
        overlay.font_size = 12
        line = captions.overlay_text(state, self.current_slice())
        overlay.text = f"{entry.name}  [{state.counts_text()}]\n{line}"
        # The mark also shows in the layer list (the z-slider's axis label is too narrow).
        self.stack_layer.rename(captions.layer_name(entry))

    def _on_wheel(self, viewer: Any, event: Any) -> None:
        if self.controls.wheel_box.isChecked():
            self.stack_layer.on_wheel(event)


class _KeyAction:
    """A viewer key binding that calls a widget method (kept identifiable for unbinding)."""

    def __init__(self, widget: AnnotationWidget, method: str) -> None:
        self.widget = widget
        self.method = method
        self.__name__ = f"zfocus_{method}"
        self.__doc__ = getattr(AnnotationWidget, method).__doc__

    def __call__(self, viewer: Any = None) -> None:
        if not self.widget.closed:
            getattr(self.widget, self.method)()


def _unbind_keys(viewer: Any) -> None:
    # Compare by name: through npe2's viewer proxy the bound objects come back wrapped.
    ours = {f"zfocus_{method}" for method in _KEYS.values()}
    for key, bound in list(viewer.keymap.items()):
        if getattr(bound, "__name__", None) in ours:
            viewer.bind_key(key, None)
