"""The annotation dock: marks reach annotations.csv, undo, navigation, suggestions, teardown."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest

from napari_zfocus._qt._viewer import text_overlay
from napari_zfocus.annotation.annotation_state import StackState
from napari_zfocus.simulation import SimulationParams, simulate_dataset

pytest.importorskip("napari")

from napari_zfocus._qt.annotation_widget import AnnotationWidget


@pytest.fixture(scope="module")
def stacks_dir(tmp_path_factory) -> Path:
    """Three tiny simulated stacks, without annotations (the user's starting point)."""
    folder = tmp_path_factory.mktemp("stacks")
    params = SimulationParams(shape=(64, 64), n_slices=11, z_step_um=0.5, pixel_size_um=0.24)
    simulate_dataset(folder, 3, seed=3, params=params)
    (folder / "annotations.csv").unlink()
    return folder


@pytest.fixture
def folder(stacks_dir, tmp_path) -> Path:
    for path in stacks_dir.glob("*.tif"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    return tmp_path


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "annotations.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _widget(make_napari_viewer, qtbot) -> AnnotationWidget:
    viewer = make_napari_viewer()
    widget = AnnotationWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def _wait_suggestion(qtbot, widget: AnnotationWidget, position: int) -> None:
    qtbot.waitUntil(
        lambda: widget.state.entries[position].suggested_index is not None, timeout=10_000
    )
    qtbot.waitUntil(lambda: widget.suggestions.computing is None, timeout=10_000)


def _press(widget: AnnotationWidget, key: str) -> None:
    """Call what the viewer runs for ``key`` (the key binding itself)."""
    from napari.utils.key_bindings import coerce_keybinding

    widget.viewer.keymap[coerce_keybinding(key)](widget.viewer)


def test_mark_with_key_is_saved_and_restored_by_new_widget(make_napari_viewer, qtbot, folder):
    widget = _widget(make_napari_viewer, qtbot)
    widget.controls.advance_box.setChecked(False)
    assert widget.open_folder(folder)
    assert widget.controls.counts_label.text() == "0 / 3 marked"
    layer = widget.layer
    assert layer.data.shape == (11, 64, 64)
    assert tuple(layer.scale) == pytest.approx((0.5, 0.24, 0.24))  # from the TIFF metadata
    widget.go_to_slice(7)
    assert widget.current_slice() == 7
    _press(widget, "f")
    assert _rows(folder)[0]["stack"] == "stack_000.tif"
    assert _rows(folder)[0]["focus_index"] == "7"
    assert widget.controls.counts_label.text() == "1 / 3 marked"
    widget.go_to_slice(9)
    text = text_overlay(widget.viewer).text
    assert "marked: slice 7 | this slice: +1.0 um from focus" in text
    assert widget.layer.name == "stack_000.tif \u2713 slice 7"

    # Edit the pixel size of the marked stack: saved at once, layer scale follows.
    widget.controls.pixel_size_spin.setValue(0.3)
    widget.controls.pixel_size_spin.editingFinished.emit()
    assert _rows(folder)[0]["pixel_size_um"] == "0.3"
    assert widget.layer.scale[-1] == pytest.approx(0.3)
    widget.shutdown()

    again = _widget(make_napari_viewer, qtbot)
    assert again.open_folder(folder)
    entry = again.state.entries[0]
    assert (entry.focus_index, entry.pixel_size_um, entry.z_step_um) == (7, 0.3, 0.5)
    assert again.controls.counts_label.text() == "1 / 3 marked"
    assert again.state.current == 1  # opens at the first unmarked stack
    again.show_stack(0)
    assert again.current_slice() == 7  # jumps to the mark


def test_undo_and_next_unmarked(make_napari_viewer, qtbot, folder):
    widget = _widget(make_napari_viewer, qtbot)
    widget.controls.advance_box.setChecked(True)
    widget.open_folder(folder)
    widget.go_to_slice(3)
    widget.mark_current_slice()
    assert widget.state.current == 1  # advanced to the next unmarked stack
    widget.show_stack(2)
    widget.go_to_slice(5)
    _press(widget, "f")
    assert widget.state.current == 1  # wraps around to the only unmarked one
    assert {r["stack"] for r in _rows(folder)} == {"stack_000.tif", "stack_002.tif"}
    _press(widget, "u")  # undo the last mark: back on that stack, row gone
    assert widget.state.current == 2
    assert widget.state.entries[2].state is not StackState.MARKED
    assert [r["stack"] for r in _rows(folder)] == ["stack_000.tif"]
    widget.show_stack(0)
    _press(widget, "n")
    assert widget.state.current == 1
    widget.shutdown()


def test_suggestion_jump_and_confirm(make_napari_viewer, qtbot, folder):
    widget = _widget(make_napari_viewer, qtbot)
    widget.controls.advance_box.setChecked(False)
    widget.open_folder(folder)
    _wait_suggestion(qtbot, widget, 0)
    entry = widget.state.entries[0]
    assert entry.state is StackState.SUGGESTED and entry.suggestion_source == "classic"
    assert widget.current_slice() == entry.suggested_index  # slider jumped to it
    assert not (folder / "annotations.csv").exists()  # suggestions are not marks
    # The next unmarked stack's suggestion is prepared ahead.
    _wait_suggestion(qtbot, widget, 1)
    _press(widget, "Enter")
    row = _rows(folder)[0]
    assert row["focus_index"] == str(entry.suggested_index)
    assert row["mark_source"] == "suggestion:classic"
    widget.shutdown()


def test_use_image_layers_writes_a_dataset(make_napari_viewer, qtbot, tmp_path):
    widget = _widget(make_napari_viewer, qtbot)
    data = np.random.default_rng(0).integers(0, 1000, (5, 16, 16)).astype(np.uint16)
    widget.viewer.add_image(data, name="my stack", scale=(2.0, 0.5, 0.5))
    widget.viewer.add_image(np.zeros((16, 16)), name="flat")  # 2-D: ignored
    assert widget.use_image_layers(tmp_path)
    qtbot.waitUntil(lambda: widget.state is not None, timeout=10_000)
    assert [e.name for e in widget.state.entries] == ["my_stack.tif"]
    assert widget.state.z_step() == pytest.approx(2.0)
    widget.go_to_slice(2)
    widget.mark_current_slice()
    assert _rows(tmp_path)[0]["z_step_um"] == "2.0"
    widget.shutdown()


def test_bad_folder_shows_error_and_widget_stays_usable(
    make_napari_viewer, qtbot, tmp_path, folder
):
    widget = _widget(make_napari_viewer, qtbot)
    assert not widget.open_folder(tmp_path / "missing")
    assert widget.state is None
    widget.mark_current_slice()  # no dataset yet: a warning, no crash
    assert widget.open_folder(folder)
    widget.shutdown()


def test_close_viewer_with_worker_running_leaves_no_thread(make_napari_viewer, qtbot, folder):
    from qtpy.QtCore import QThreadPool

    before = set(threading.enumerate())
    viewer = make_napari_viewer()
    widget = AnnotationWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.open_folder(folder)  # starts a suggestion worker
    viewer.close()
    assert widget.closed
    # Closing does not block: the dock's workers end on their own threads.
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=30_000)
    qtbot.waitUntil(lambda: not [t for t in threading.enumerate() if t not in before
                                 and t.is_alive() and not isinstance(t, threading._DummyThread)],
                    timeout=30_000)


def test_opens_from_the_plugin_menu_with_the_viewer_proxy(make_napari_viewer, qtbot, folder):
    """npe2 injects a public-only viewer proxy: the widget must not need private access."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-zfocus", "Annotate in-focus slices")
    assert isinstance(widget, AnnotationWidget)
    assert widget.open_folder(folder)
    _wait_suggestion(qtbot, widget, 0)
    viewer.close()
    assert widget.closed


def test_closing_never_waits_for_other_plugins_workers(make_napari_viewer, qtbot, folder):
    """Shutdown asks the dock's own workers to stop and returns; it gives the viewer back."""
    import time

    from napari.qt.threading import create_worker
    from qtpy.QtCore import QThreadPool

    release = threading.Event()
    foreign = create_worker(release.wait, 60)  # another plugin's job on napari's shared pool
    foreign.start()
    viewer = make_napari_viewer()
    wheel_before, zoom_before = list(viewer.mouse_wheel_callbacks), viewer.camera.mouse_zoom
    widget = AnnotationWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert viewer.camera.mouse_zoom is False  # the wheel scrolls z while the dock lives
    try:
        start = time.monotonic()
        widget.shutdown()
        assert time.monotonic() - start < 5.0  # the old dock waited up to 10 s on the pool
        assert widget.closed and not release.is_set()
        names = {getattr(b, "__name__", "") for b in viewer.keymap.values()}
        assert not {n for n in names if n.startswith("zfocus_")}  # keys given back
        assert list(viewer.mouse_wheel_callbacks) == wheel_before
        assert viewer.camera.mouse_zoom == zoom_before
    finally:
        release.set()
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=30_000)
