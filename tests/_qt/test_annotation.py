"""The annotation dock: marks reach annotations.csv, undo, navigation, suggestions, teardown."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest

from napari_zfocus._qt._viewer import text_overlay
from napari_zfocus.annotation.state import StackState
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
        lambda: widget.session.entries[position].suggested_index is not None, timeout=10_000
    )
    qtbot.waitUntil(lambda: widget._suggesting is None, timeout=10_000)


def _press(widget: AnnotationWidget, key: str) -> None:
    """Call what the viewer runs for ``key`` (the key binding itself)."""
    from napari.utils.key_bindings import coerce_keybinding

    widget.viewer.keymap[coerce_keybinding(key)](widget.viewer)


def test_mark_with_key_is_saved_and_restored_by_new_widget(make_napari_viewer, qtbot, folder):
    widget = _widget(make_napari_viewer, qtbot)
    widget.advance_box.setChecked(False)
    assert widget.open_folder(folder)
    assert widget.counts_label.text() == "0 / 3 marked"
    layer = widget.layer
    assert layer.data.shape == (11, 64, 64)
    assert tuple(layer.scale) == pytest.approx((0.5, 0.24, 0.24))  # from the TIFF metadata
    widget.go_to_slice(7)
    assert widget.current_slice() == 7
    _press(widget, "f")
    assert _rows(folder)[0]["stack"] == "stack_000.tif"
    assert _rows(folder)[0]["focus_index"] == "7"
    assert widget.counts_label.text() == "1 / 3 marked"
    widget.go_to_slice(9)
    text = text_overlay(widget.viewer).text
    assert "marked: slice 7 | this slice: +1.0 um from focus" in text
    assert widget.layer.name == "stack_000.tif \u2713 slice 7"

    # Edit the pixel size of the marked stack: saved at once, layer scale follows.
    widget.pixel_size_spin.setValue(0.3)
    widget.pixel_size_spin.editingFinished.emit()
    assert _rows(folder)[0]["pixel_size_um"] == "0.3"
    assert widget.layer.scale[-1] == pytest.approx(0.3)
    widget.shutdown()

    again = _widget(make_napari_viewer, qtbot)
    assert again.open_folder(folder)
    entry = again.session.entries[0]
    assert (entry.focus_index, entry.pixel_size_um, entry.z_step_um) == (7, 0.3, 0.5)
    assert again.counts_label.text() == "1 / 3 marked"
    assert again.session.current == 1  # opens at the first unmarked stack
    again.show_stack(0)
    assert again.current_slice() == 7  # jumps to the mark


def test_undo_and_next_unmarked(make_napari_viewer, qtbot, folder):
    widget = _widget(make_napari_viewer, qtbot)
    widget.advance_box.setChecked(True)
    widget.open_folder(folder)
    widget.go_to_slice(3)
    widget.mark_current_slice()
    assert widget.session.current == 1  # advanced to the next unmarked stack
    widget.show_stack(2)
    widget.go_to_slice(5)
    _press(widget, "f")
    assert widget.session.current == 1  # wraps around to the only unmarked one
    assert {r["stack"] for r in _rows(folder)} == {"stack_000.tif", "stack_002.tif"}
    _press(widget, "u")  # undo the last mark: back on that stack, row gone
    assert widget.session.current == 2
    assert widget.session.entries[2].state is not StackState.MARKED
    assert [r["stack"] for r in _rows(folder)] == ["stack_000.tif"]
    widget.show_stack(0)
    _press(widget, "n")
    assert widget.session.current == 1
    widget.shutdown()


def test_suggestion_jump_and_confirm(make_napari_viewer, qtbot, folder):
    widget = _widget(make_napari_viewer, qtbot)
    widget.advance_box.setChecked(False)
    widget.open_folder(folder)
    _wait_suggestion(qtbot, widget, 0)
    entry = widget.session.entries[0]
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
    qtbot.waitUntil(lambda: widget.session is not None, timeout=10_000)
    assert [e.name for e in widget.session.entries] == ["my_stack.tif"]
    assert widget.session.z_step() == pytest.approx(2.0)
    widget.go_to_slice(2)
    widget.mark_current_slice()
    assert _rows(tmp_path)[0]["z_step_um"] == "2.0"
    widget.shutdown()


def test_bad_folder_shows_error_and_widget_stays_usable(
    make_napari_viewer, qtbot, tmp_path, folder
):
    widget = _widget(make_napari_viewer, qtbot)
    assert not widget.open_folder(tmp_path / "missing")
    assert widget.session is None
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
    assert widget._closed
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()
                and not isinstance(t, threading._DummyThread)]


def test_opens_from_the_plugin_menu_with_the_viewer_proxy(make_napari_viewer, qtbot, folder):
    """npe2 injects a public-only viewer proxy: the widget must not need private access."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-zfocus", "Annotate in-focus slices")
    assert isinstance(widget, AnnotationWidget)
    assert widget.open_folder(folder)
    _wait_suggestion(qtbot, widget, 0)
    viewer.close()
    assert widget._closed
