"""Dock widget: mark the in-focus slice of many z-stacks quickly.

A thin view over :class:`~napari_zfocus.annotation.state.AnnotationState`, which
holds the marks, writes ``annotations.csv`` atomically after every change and keeps the
undo history. The widget shows one stack at a time in a single Image layer (its data are
replaced when switching, so only the shown stack is open; pixels are read lazily by dask
one slice at a time), computes suggestions in a worker and binds the keys:

==========  ==============================================
``f``       mark the current slice as in focus
``Enter``   confirm the suggestion
``n``       next unmarked stack
``u``       undo (also ``Ctrl-Z``)
wheel       scroll through z (option; napari's Ctrl+wheel and arrow keys work too)
==========  ==============================================
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QThreadPool
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_zfocus._qt._lifecycle import CloseWatcher
from napari_zfocus._qt._viewer import text_overlay
from napari_zfocus.annotation.state import (
    AnnotationState,
    SliceSuggestion,
    StackState,
    suggest_slice,
)
from napari_zfocus.data import read_stack, write_stack
from napari_zfocus.errors import ZFocusError

if TYPE_CHECKING:
    import napari

#: Colour and symbol of each stack state in the list.
_STATE_LOOK = {
    StackState.MARKED: ("#a0e77d", "\u2713"),  # check mark
    StackState.SUGGESTED: ("#ff9f0a", "?"),
    StackState.UNMARKED: ("#9a9a9a", "\u00b7"),
}
#: Keys bound on the viewer while the widget lives: key -> method name.
_KEYS = {
    "f": "mark_current_slice",
    # Not "c": napari's image layers use it for auto-contrast, and layer keys win.
    "Enter": "confirm_suggestion",
    "n": "next_unmarked",
    "u": "undo",
    "Control-Z": "undo",
}
_LAYER_NAME = "zfocus annotation"


class AnnotationWidget(QWidget):
    """Annotate the in-focus slice of z-stacks (one key per stack).

    Parameters
    ----------
    viewer
        The napari viewer (injected by npe2).
    parent
        Qt parent.
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.session: AnnotationState | None = None
        self.layer: Any = None
        self.predictor: Any = None
        self._workers: set[Any] = set()
        self._suggesting: str | None = None  # name of the stack a worker is suggesting for
        self._slice_at_open: int | None = None  # jump to a late suggestion only if unmoved
        self._closed = False
        self._shown_shape: tuple[int, ...] | None = None
        self._build_ui()
        self._bind_keys()
        self.viewer.dims.events.current_step.connect(self._on_slice_changed)
        self.viewer.mouse_wheel_callbacks.append(self._on_wheel)
        # napari >= 0.9 moved the camera to viewer.scene (viewer.camera is deprecated).
        scene = getattr(viewer, "scene", None)
        self._camera = scene.camera if scene is not None else viewer.camera
        self._zoom_before = self._camera.mouse_zoom
        self._set_wheel_scrolls_z(self.wheel_box.isChecked())
        # Stop workers when the main window closes (the dock is not always closed first).
        # The viewer may be npe2's public-only proxy, so the window is found through Qt.
        self._close_watcher = CloseWatcher(self.shutdown)
        self._refresh_all()

    # ------------------------------------------------------------------- layout
    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)

        source = QGroupBox("Stacks")
        src = QVBoxLayout(source)
        row = QHBoxLayout()
        self.open_folder_button = QPushButton("Open folder\u2026")
        self.open_folder_button.setToolTip(
            "A dataset folder: stacks (.tif) with or without annotations.csv"
        )
        self.open_files_button = QPushButton("Open stacks\u2026")
        self.use_layers_button = QPushButton("Use Image layers")
        self.use_layers_button.setToolTip(
            "Annotate the 3-D Image layers now open (saved as TIFF into a folder if needed)"
        )
        for button in (self.open_folder_button, self.open_files_button, self.use_layers_button):
            row.addWidget(button)
        src.addLayout(row)
        self.folder_label = QLabel("no dataset open")
        self.folder_label.setWordWrap(True)
        src.addWidget(self.folder_label)
        counts = QHBoxLayout()
        self.counts_label = QLabel("0 / 0 marked")
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(10)
        counts.addWidget(self.counts_label)
        counts.addWidget(self.progress_bar, 1)
        src.addLayout(counts)
        self.stack_list = QListWidget()
        self.stack_list.setMinimumHeight(140)
        src.addWidget(self.stack_list, 1)
        nav = QHBoxLayout()
        self.prev_button = QPushButton("\u25c0 Prev")
        self.next_button = QPushButton("Next \u25b6")
        self.next_unmarked_button = QPushButton("Next unmarked (n)")
        for button in (self.prev_button, self.next_button, self.next_unmarked_button):
            nav.addWidget(button)
        src.addLayout(nav)
        layout.addWidget(source, 1)

        current = QGroupBox("Current stack")
        cur = QVBoxLayout(current)
        self.stack_label = QLabel("\u2014")
        self.stack_label.setWordWrap(True)
        cur.addWidget(self.stack_label)
        form = QFormLayout()
        self.z_step_spin = _size_spin(1.0)
        self.pixel_size_spin = _size_spin(0.24)
        form.addRow("z-step", self.z_step_spin)
        form.addRow("pixel size", self.pixel_size_spin)
        cur.addLayout(form)
        self.suggestion_label = QLabel("suggestion: \u2014")
        cur.addWidget(self.suggestion_label)
        actions = QHBoxLayout()
        self.mark_button = QPushButton("Mark slice (f)")
        self.confirm_button = QPushButton("Confirm (Enter)")
        self.undo_button = QPushButton("Undo (u)")
        self.unmark_button = QPushButton("Unmark")
        for button in (self.mark_button, self.confirm_button, self.undo_button, self.unmark_button):
            actions.addWidget(button)
        cur.addLayout(actions)
        self.advance_box = QCheckBox("go to the next unmarked stack after marking")
        self.advance_box.setChecked(True)
        self.wheel_box = QCheckBox("mouse wheel scrolls z (Ctrl+wheel always does)")
        self.wheel_box.setChecked(True)
        cur.addWidget(self.advance_box)
        cur.addWidget(self.wheel_box)
        model_row = QHBoxLayout()
        self.model_button = QPushButton("Load model\u2026")
        self.model_button.setToolTip("Suggest the slice whose predicted z is nearest 0")
        self.model_label = QLabel("suggestions: bright-field contrast dip")
        self.model_label.setWordWrap(True)
        model_row.addWidget(self.model_button)
        model_row.addWidget(self.model_label, 1)
        cur.addLayout(model_row)
        layout.addWidget(current)

        keys = QLabel("keys: f mark \u00b7 Enter confirm \u00b7 n next unmarked \u00b7 u undo")
        keys.setStyleSheet("color: #9a9a9a")
        layout.addWidget(keys)

        self.open_folder_button.clicked.connect(self._choose_folder)
        self.open_files_button.clicked.connect(self._choose_files)
        self.use_layers_button.clicked.connect(lambda: self.use_image_layers())
        self.stack_list.currentRowChanged.connect(self._on_row_changed)
        self.prev_button.clicked.connect(lambda: self._step_stack(-1))
        self.next_button.clicked.connect(lambda: self._step_stack(+1))
        self.next_unmarked_button.clicked.connect(lambda: self.next_unmarked())
        self.mark_button.clicked.connect(lambda: self.mark_current_slice())
        self.confirm_button.clicked.connect(lambda: self.confirm_suggestion())
        self.undo_button.clicked.connect(lambda: self.undo())
        self.unmark_button.clicked.connect(lambda: self.unmark())
        self.z_step_spin.editingFinished.connect(self._on_sizes_edited)
        self.pixel_size_spin.editingFinished.connect(self._on_sizes_edited)
        self.wheel_box.toggled.connect(self._set_wheel_scrolls_z)
        self.model_button.clicked.connect(self._choose_model)

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

    def _open(self, make: Any) -> bool:
        try:
            session = make()
        except ZFocusError as exc:
            show_error(str(exc))
            return False
        self.session = session
        self.folder_label.setText(f"{session.root}  (annotations.csv is saved here)")
        self._rebuild_list()
        first = session.next_unmarked(start=-1)
        self.show_stack(0 if first is None else first)
        return True

    def use_image_layers(self, folder: str | Path | None = None) -> bool:
        """Annotate the 3-D Image layers of the viewer.

        Layers read from files are annotated in place (CSV next to them). Otherwise every
        layer is written as an ImageJ TIFF into ``folder`` (asked for if not given), in a
        worker, so the dataset is self-contained in the interchange format.
        """
        layers = [
            layer
            for layer in self.viewer.layers
            if layer.__class__.__name__ == "Image"
            and layer is not self.layer
            and layer.ndim == 3
            and not getattr(layer, "rgb", False)
        ]
        if not layers:
            show_warning("no 3-D Image layers to annotate: open z-stacks first")
            return False
        sources = [getattr(layer.source, "path", None) for layer in layers]
        if all(p and Path(p).is_file() for p in sources):
            ok = self.open_paths(sources)  # type: ignore[arg-type]
            if ok:
                for layer in layers:
                    layer.visible = False
            return ok
        if folder is None:
            folder = QFileDialog.getExistingDirectory(
                self, "Folder to save the stacks and annotations.csv"
            )
            if not folder:
                return False
        # Plain data for the worker: arrays and numbers, never the layers.
        jobs = [
            (Path(folder) / f"{_safe_name(layer.name)}.tif", layer.data,
             float(layer.scale[-3]), float(layer.scale[-1]))
            for layer in layers
        ]
        for layer in layers:
            layer.visible = False
        worker = create_worker(
            _write_stacks, jobs,
            _progress={"total": len(jobs), "desc": "saving stacks"},
            _connect={"returned": lambda paths: self.open_paths(paths, folder),
                      "errored": lambda exc: show_error(str(exc))},
            _start_thread=False,
        )
        self._start(worker)
        return True

    # --------------------------------------------------------------- showing
    def show_stack(self, position: int) -> None:
        """Open stack ``position`` in the annotation layer and jump to its mark/suggestion."""
        session = self.session
        if session is None:
            return
        entry = session.select(position)
        try:
            stack = read_stack(
                session.stack_path(), z_step_um=entry.z_step_um, pixel_size_um=entry.pixel_size_um
            )
            middle = stack.slice(stack.n_slices // 2)
        except ZFocusError as exc:
            show_error(str(exc))
            self._refresh_all()
            return
        session.opened(stack.n_slices, stack.z_step_um, stack.pixel_size_um)
        scale = (session.z_step(), session.pixel_size(), session.pixel_size())
        # Contrast from one slice: napari would otherwise estimate it from the whole stack.
        lo, hi = (float(v) for v in np.percentile(middle, (0.5, 99.5)))
        hi = hi if hi > lo else lo + 1.0
        if self.layer is None or self.layer not in self.viewer.layers:
            self.layer = self.viewer.add_image(
                stack.data, name=_LAYER_NAME, scale=scale, contrast_limits=(lo, hi)
            )
        else:
            self.layer.data = stack.data
            self.layer.scale = scale
            self.layer.contrast_limits_range = (
                min(lo, float(middle.min())), max(hi, float(middle.max()))
            )
            self.layer.contrast_limits = (lo, hi)
        if self._shown_shape != stack.shape:  # keep the user's zoom between same-size stacks
            self.viewer.reset_view()
            self._shown_shape = stack.shape
        target = entry.focus_index if entry.focus_index is not None else entry.suggested_index
        self.go_to_slice(stack.n_slices // 2 if target is None else target)
        self._slice_at_open = self.current_slice()
        self._refresh_all()
        if entry.state is StackState.UNMARKED or (
            entry.state is StackState.SUGGESTED
            and self.predictor is not None
            and entry.suggestion_source != "model"
        ):
            self._request_suggestion(position)

    def current_slice(self) -> int:
        """Index of the slice shown in the annotation layer (0 without a stack)."""
        if self.layer is None or self.layer not in self.viewer.layers:
            return 0
        z = float(self.layer.world_to_data(self.viewer.dims.point)[0])
        return int(np.clip(round(z), 0, self.layer.data.shape[0] - 1))

    def go_to_slice(self, index: int) -> None:
        """Move the z slider to slice ``index`` of the annotation layer."""
        if self.layer is None:
            return
        axis = self.viewer.dims.ndim - 3
        world = float(self.layer.data_to_world([index, 0, 0])[0])
        self.viewer.dims.set_point(axis, world)

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
        session = self.session
        if session is None:
            return
        before = session.current
        try:
            position = session.undo()
        except ZFocusError as exc:
            show_error(str(exc))
            return
        if position is None:
            show_info("nothing to undo")
        elif position != before:
            self.show_stack(position)
        self._refresh_all()

    def next_unmarked(self) -> None:
        """Go to the next stack without a mark (key ``n``)."""
        if self.session is None:
            return
        position = self.session.next_unmarked()
        if position is None:
            show_info(f"all {len(self.session.entries)} stacks are marked")
            return
        self.show_stack(position)

    def _act(self, change: Any, advance: bool = False) -> None:
        session = self.session
        if session is None or self.layer is None:
            show_warning("open a dataset folder or stacks first")
            return
        try:
            change(session)
        except ZFocusError as exc:
            show_error(str(exc))
            return
        self._refresh_all()
        if advance and self.advance_box.isChecked():
            position = session.next_unmarked()
            if position is not None:
                self.show_stack(position)

    def _step_stack(self, delta: int) -> None:
        if self.session is None or not self.session.entries:
            return
        current = self.session.current or 0
        self.show_stack((current + delta) % len(self.session.entries))

    def _on_row_changed(self, row: int) -> None:
        if self.session is not None and row >= 0 and row != self.session.current:
            self.show_stack(row)

    def _on_sizes_edited(self) -> None:
        if self.session is None or self.session.current is None:
            return
        try:
            self.session.set_sizes(self.z_step_spin.value(), self.pixel_size_spin.value())
        except ZFocusError as exc:
            show_error(str(exc))
            return
        if self.layer is not None:
            index = self.current_slice()
            size = self.session.pixel_size()
            self.layer.scale = (self.session.z_step(), size, size)
            self.go_to_slice(index)  # keep the same slice under the new z scale
        self._refresh_all()

    # ------------------------------------------------------------- suggestions
    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Model file", "", "zfocus model (*.zfm);;All (*)"
        )
        if path:
            self.load_model(path)

    def load_model(self, path: str | Path) -> None:
        """Load a model in a worker; its suggestions then replace the classic ones."""
        from napari_zfocus.model.inference import Predictor

        self.model_label.setText(f"loading {Path(path).name}\u2026")

        def loaded(predictor: Any) -> None:
            self.predictor = predictor
            self.model_label.setText(f"suggestions: model {Path(path).name} (z nearest 0)")
            if self.session is not None:
                for entry in self.session.entries:
                    if entry.suggestion_source == "classic":
                        entry.suggested_index = entry.suggestion_source = None
                if self.session.current is not None:
                    self._request_suggestion(self.session.current)
                self._refresh_all()

        def failed(exc: Exception) -> None:
            self.model_label.setText("suggestions: bright-field contrast dip")
            show_error(str(exc))

        worker = create_worker(
            Predictor.from_file, Path(path),
            _connect={"returned": loaded, "errored": failed}, _start_thread=False,
        )
        self._start(worker)

    def _request_suggestion(self, position: int) -> None:
        """Suggest for ``position`` unless a worker is busy (it picks up the rest after)."""
        if self.session is None or self._suggesting is not None or self._closed:
            return
        session = self.session
        entry = session.entries[position]
        self._suggesting = entry.name
        worker = create_worker(
            suggest_slice,
            session.root / entry.name,
            entry.name,
            session.z_step(position),
            session.pixel_size(position),
            self.predictor,
            # The session travels with the result: a late answer for a dataset that was
            # replaced meanwhile (same stack names, other folder) is dropped.
            _connect={
                "returned": lambda result, s=session: self._on_suggestion(result, s),
                "errored": self._on_suggestion_error,
            },
            _start_thread=False,
        )
        self._start(worker)
        self.suggestion_label.setText("suggestion: computing\u2026")

    def _on_suggestion(self, result: SliceSuggestion, asked: AnnotationState | None = None) -> None:
        self._suggesting = None
        session = self.session
        if session is None or self._closed:
            return
        names = [e.name for e in session.entries]
        if (asked is not None and asked is not session) or result.name not in names:
            self._suggest_ahead()  # another dataset was opened meanwhile
            return
        position = names.index(result.name)
        session.set_suggestion(result.index, result.source, position)
        if (
            position == session.current
            and session.entries[position].focus_index is None
            and self.current_slice() == self._slice_at_open
        ):
            self.go_to_slice(result.index)
            self._slice_at_open = self.current_slice()
        self._refresh_all()
        self._suggest_ahead()

    def _on_suggestion_error(self, exc: Exception) -> None:
        self._suggesting = None
        if not self._closed:
            show_warning(f"no suggestion: {exc}")
            self._refresh_all()

    def _suggest_ahead(self) -> None:
        """Prepare the current stack's, then the next unmarked stack's suggestion."""
        session = self.session
        if session is None or session.current is None:
            return
        wanted = "model" if self.predictor is not None else "classic"
        current = session.entry()
        if current.focus_index is None and current.suggestion_source != wanted:
            self._request_suggestion(session.current)
            return
        position = session.next_unmarked()
        if position is not None and session.entries[position].suggestion_source != wanted:
            self._request_suggestion(position)

    # ---------------------------------------------------------------- refresh
    def _rebuild_list(self) -> None:
        self.stack_list.blockSignals(True)
        self.stack_list.clear()
        for _ in self.session.entries if self.session else []:
            self.stack_list.addItem(QListWidgetItem())
        self.stack_list.blockSignals(False)

    def _refresh_item(self, position: int) -> None:
        assert self.session is not None
        entry = self.session.entries[position]
        item = self.stack_list.item(position)
        if item is None:
            return
        colour, symbol = _STATE_LOOK[entry.state]
        if entry.state is StackState.MARKED:
            detail = f"slice {entry.focus_index}"
        elif entry.state is StackState.SUGGESTED:
            detail = f"suggested {entry.suggested_index}"
        else:
            detail = "unmarked"
        item.setText(f"{symbol}  {entry.name}   ({detail})")
        item.setForeground(QColor(colour))

    def _refresh_all(self) -> None:
        session = self.session
        has = session is not None and session.current is not None and self.layer is not None
        for button in (self.mark_button, self.confirm_button, self.unmark_button,
                       self.z_step_spin, self.pixel_size_spin, self.prev_button,
                       self.next_button, self.next_unmarked_button):
            button.setEnabled(has)
        self.undo_button.setEnabled(session is not None and session.can_undo)
        if session is None:
            return
        for position in range(len(session.entries)):
            self._refresh_item(position)
        self.counts_label.setText(session.counts_text())
        self.progress_bar.setMaximum(max(1, len(session.entries)))
        self.progress_bar.setValue(session.n_marked)
        if session.current is None:
            return
        self.stack_list.blockSignals(True)
        self.stack_list.setCurrentRow(session.current)
        self.stack_list.blockSignals(False)
        entry = session.entry()
        self.confirm_button.setEnabled(has and entry.suggested_index is not None)
        self.unmark_button.setEnabled(has and entry.focus_index is not None)
        self.stack_label.setText(
            f"{entry.name}  \u2014  {entry.n_slices or '?'} slices  "
            f"({session.current + 1} of {len(session.entries)})"
        )
        for spin, value in ((self.z_step_spin, session.z_step()),
                            (self.pixel_size_spin, session.pixel_size())):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        if entry.focus_index is not None:
            how = entry.extra.get("mark_source", "manual")
            self.suggestion_label.setText(f"marked: slice {entry.focus_index} ({how})")
        elif entry.suggested_index is not None:
            self.suggestion_label.setText(
                f"suggestion: slice {entry.suggested_index} ({entry.suggestion_source}) "
                "\u2014 Enter to confirm"
            )
        elif self._suggesting == entry.name:
            self.suggestion_label.setText("suggestion: computing\u2026")
        else:
            self.suggestion_label.setText("suggestion: \u2014")
        self._refresh_overlay()

    def _refresh_overlay(self) -> None:
        session = self.session
        if session is None or session.current is None or self.layer is None:
            return
        index = self.current_slice()
        entry = session.entry()
        overlay = text_overlay(self.viewer)
        overlay.visible = True
        overlay.font_size = 12
        overlay.text = f"{entry.name}  [{session.counts_text()}]\n{session.overlay_text(index)}"
        # The mark also shows in the layer list: the layer name carries it (the z-slider's
        # axis label is too narrow for it).
        if entry.focus_index is not None:
            name = f"{entry.name} \u2713 slice {entry.focus_index}"
        elif entry.suggested_index is not None:
            name = f"{entry.name} ? slice {entry.suggested_index}"
        else:
            name = f"{entry.name} (unmarked)"
        if self.layer.name != name:
            self.layer.name = name

    def _on_slice_changed(self, event: Any = None) -> None:
        if not self._closed:
            self._refresh_overlay()

    # ----------------------------------------------------------------- input
    def _bind_keys(self) -> None:
        for key, method in _KEYS.items():
            self.viewer.bind_key(key, _KeyAction(self, method), overwrite=True)

    def _unbind_keys(self) -> None:
        # Compare by name: through npe2's viewer proxy the bound objects come back wrapped.
        ours = {f"zfocus_{method}" for method in _KEYS.values()}
        for key, bound in list(self.viewer.keymap.items()):
            if getattr(bound, "__name__", None) in ours:
                self.viewer.bind_key(key, None)

    def _set_wheel_scrolls_z(self, on: bool) -> None:
        # With the wheel stepping through z, zooming stays on the napari toolbar / pinch.
        self._camera.mouse_zoom = self._zoom_before if not on else False

    def _on_wheel(self, viewer: Any, event: Any) -> None:
        if self._closed or not self.wheel_box.isChecked() or self.layer is None:
            return
        if event.modifiers:  # napari's own Ctrl+wheel (z) and Alt+wheel (layers)
            return
        delta = float(np.sign(event.delta[1]))
        if delta:
            last = self.layer.data.shape[0] - 1
            self.go_to_slice(int(np.clip(self.current_slice() + delta, 0, last)))

    # ---------------------------------------------------------------- workers
    def _start(self, worker: Any) -> None:
        self._close_watcher.watch(self)  # docked by now: a button or key of the dock started this
        self._workers.add(worker)
        worker.finished.connect(lambda: self._workers.discard(worker))
        worker.start()

    # --------------------------------------------------------------- teardown
    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Stop workers, unbind keys and give the viewer its defaults back. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for worker in list(self._workers):
            worker.quit()
        # SliceSuggestion/model workers take about a second; wait so no thread outlives the viewer.
        QThreadPool.globalInstance().waitForDone(timeout_ms)
        self._unbind_keys()
        with contextlib.suppress(RuntimeError, TypeError, ValueError):
            self.viewer.dims.events.current_step.disconnect(self._on_slice_changed)
        if self._on_wheel in self.viewer.mouse_wheel_callbacks:
            self.viewer.mouse_wheel_callbacks.remove(self._on_wheel)
        self._camera.mouse_zoom = self._zoom_before

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        self._close_watcher.watch(self)
        super().showEvent(event)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        self.shutdown()
        super().closeEvent(event)


class _KeyAction:
    """A viewer key binding that calls a widget method (kept identifiable for unbinding)."""

    def __init__(self, widget: AnnotationWidget, method: str) -> None:
        self.widget = widget
        self.method = method
        self.__name__ = f"zfocus_{method}"
        self.__doc__ = getattr(AnnotationWidget, method).__doc__

    def __call__(self, viewer: Any = None) -> None:
        if not self.widget._closed:
            getattr(self.widget, self.method)()


def _size_spin(value: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(4)
    spin.setRange(0.0001, 1000.0)
    spin.setSingleStep(0.01)
    spin.setSuffix(" um")
    spin.setKeyboardTracking(False)
    spin.setValue(value)
    return spin


def _safe_name(name: str) -> str:
    """A file name from a layer name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "stack"


def _write_stacks(jobs: list[tuple[Path, Any, float, float]]) -> Any:
    """Write in-memory stacks as TIFF (generator: one yield per stack, for progress)."""
    paths = []
    for path, data, z_step, pixel in jobs:
        write_stack(path, np.asarray(data), z_step_um=z_step, pixel_size_um=pixel)
        paths.append(path)
        yield path
    return paths
