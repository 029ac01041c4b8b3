"""The annotation session (model behind the annotation widget), without Qt."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_zfocus.annotation.annotation_state import MARK_SOURCE_COLUMN, AnnotationState
from napari_zfocus.annotation.captions import overlay_text
from napari_zfocus.annotation.stacks import StackState, discover_stacks
from napari_zfocus.data import read_dataset, write_stack
from napari_zfocus.errors import ZFocusError


def _stack(path: Path, n: int = 5, z_step: float = 0.5, pixel: float = 0.1) -> Path:
    data = np.arange(n * 8 * 8, dtype=np.uint16).reshape(n, 8, 8)
    write_stack(path, data, z_step_um=z_step, pixel_size_um=pixel)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for i in (1, 2, 10):
        _stack(tmp_path / f"s{i}.tif")
    return tmp_path


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "annotations.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_folder_without_csv_starts_unmarked(folder):
    session = AnnotationState.open_folder(folder)
    assert [e.name for e in session.entries] == ["s1.tif", "s2.tif", "s10.tif"]  # natural order
    assert all(e.state is StackState.UNMARKED for e in session.entries)
    assert session.counts_text() == "0 / 3 marked"
    assert not (folder / "annotations.csv").exists()  # nothing written before a mark


def test_mark_is_saved_at_once_and_restored(folder):
    session = AnnotationState.open_folder(folder)
    session.select(1)
    session.opened(5, z_step_um=0.5, pixel_size_um=0.1)
    session.mark(3)
    rows = _rows(folder)
    assert rows == [
        {"stack": "s2.tif", "focus_index": "3", "z_step_um": "0.5", "pixel_size_um": "0.1",
         MARK_SOURCE_COLUMN: "manual"}
    ]
    again = AnnotationState.open_folder(folder)
    entry = again.entries[1]
    assert (entry.focus_index, entry.z_step_um, entry.pixel_size_um) == (3, 0.5, 0.1)
    assert entry.state is StackState.MARKED
    assert again.counts_text() == "1 / 3 marked"
    # The file is a valid dataset for training.
    assert read_dataset(folder).annotations[0].focus_index == 3


def test_extra_columns_and_their_order_survive(folder):
    (folder / "annotations.csv").write_text(
        "operator,stack,focus_index,z_step_um,pixel_size_um\nann,s1.tif,2,0.5,0.1\n"
    )
    session = AnnotationState.open_folder(folder)
    session.select(2)
    session.mark(1)
    text = (folder / "annotations.csv").read_text().splitlines()
    assert text[0] == "operator,stack,focus_index,z_step_um,pixel_size_um,mark_source"
    assert text[1].startswith("ann,s1.tif,2,")
    assert _rows(folder)[1]["operator"] == ""


def test_undo_reverts_and_saves(folder):
    session = AnnotationState.open_folder(folder)
    session.mark(2)
    session.mark(4)
    assert session.undo() == 0
    assert _rows(folder)[0]["focus_index"] == "2"
    session.select(2)
    assert session.undo() == 0 and session.current == 0  # undo shows the stack it touched
    assert session.entries[0].focus_index is None
    assert _rows(folder) == []
    assert session.undo() is None and not session.can_undo


def test_next_unmarked_wraps_and_ends(folder):
    session = AnnotationState.open_folder(folder)
    session.select(1)
    session.mark(0)
    assert session.next_unmarked() == 2
    session.select(2)
    assert session.next_unmarked() == 0  # wraps around
    for pos in (0, 2):
        session.select(pos)
        session.mark(1)
    assert session.next_unmarked() is None


def test_suggestion_kept_in_memory_until_confirmed(folder):
    session = AnnotationState.open_folder(folder)
    with pytest.raises(ZFocusError, match="no suggestion"):
        session.confirm_suggestion()
    session.set_suggestion(3, "classic")
    assert session.entry().state is StackState.SUGGESTED
    assert not (folder / "annotations.csv").exists()
    assert "suggested (classic): slice 3" in overlay_text(session, 1)
    session.confirm_suggestion()
    assert session.entry().state is StackState.MARKED
    assert _rows(folder)[0][MARK_SOURCE_COLUMN] == "suggestion:classic"
    assert _rows(folder)[0]["focus_index"] == "3"


def test_an_unsure_suggestion_says_so(folder):
    """The worker's note (confidence, runner-up) reaches the dock's text; a mark clears it."""
    from napari_zfocus.annotation.captions import suggestion_text
    from napari_zfocus.annotation.slice_suggestion import SliceSuggestion

    session = AnnotationState.open_folder(folder)
    sure = SliceSuggestion(session.entry().name, 3, "classic", 0.9, runner_up=8)
    unsure = SliceSuggestion(session.entry().name, 3, "classic", 0.2, runner_up=8)
    assert sure.note == ""
    assert unsure.note == "unsure: confidence 0.20, runner-up slice 8"
    session.accept_suggestion(unsure.name, unsure.index, unsure.source, unsure.note)
    assert "runner-up slice 8" in suggestion_text(session.entry())
    session.set_suggestion(None, "classic")
    assert session.entry().suggestion_note == ""


def test_overlay_text_and_distance(folder):
    session = AnnotationState.open_folder(folder)
    session.opened(5, z_step_um=0.5, pixel_size_um=0.1)
    assert session.distance_um(3) is None
    session.mark(1)
    assert session.distance_um(3) == pytest.approx(1.0)
    assert overlay_text(session, 3) == "marked: slice 1 | this slice: +1.0 um from focus"
    assert overlay_text(session, 0) == "marked: slice 1 | this slice: -0.5 um from focus"


def test_sizes_metadata_defaults_and_edits(folder):
    session = AnnotationState.open_folder(folder, default_z_step_um=2.0)
    assert session.z_step() == 2.0  # unknown yet: default
    session.opened(5, z_step_um=0.5, pixel_size_um=None)
    assert session.z_step() == 0.5 and session.pixel_size() == 0.24
    session.set_sizes(z_step_um=0.75)  # unmarked: nothing written
    assert not (folder / "annotations.csv").exists()
    session.mark(2)
    session.set_sizes(pixel_size_um=0.3)  # marked: saved at once, undoable
    assert _rows(folder)[0]["pixel_size_um"] == "0.3"
    session.undo()
    assert _rows(folder)[0]["pixel_size_um"] == "0.24"
    with pytest.raises(ZFocusError, match="must be positive"):
        session.set_sizes(z_step_um=0)


def test_slice_out_of_range_refused(folder):
    session = AnnotationState.open_folder(folder)
    session.opened(5, 0.5, 0.1)
    with pytest.raises(ZFocusError, match="outside the stack"):
        session.mark(5)
    assert not session.can_undo


def test_discovery_skips_hidden_and_2d_and_groups_slice_folders(tmp_path):
    _stack(tmp_path / "a.tif")
    _stack(tmp_path / "sub" / "b.tiff")
    (tmp_path / "slices").mkdir()
    for i in range(3):
        tifffile.imwrite(tmp_path / "slices" / f"z{i}.tif", np.zeros((4, 4), np.uint16))
    tifffile.imwrite(tmp_path / "single.tif", np.zeros((4, 4), np.uint16))
    _stack(tmp_path / ".a.tif.123.tmp.tif")
    assert discover_stacks(tmp_path) == ["a.tif", "slices", "sub/b.tiff"]


def test_rows_of_missing_stacks_are_kept(folder):
    (folder / "annotations.csv").write_text(
        "stack,focus_index,z_step_um,pixel_size_um\ngone.tif,4,1.0,0.2\n"
    )
    session = AnnotationState.open_folder(folder)
    assert "gone.tif" in [e.name for e in session.entries]
    session.select([e.name for e in session.entries].index("s1.tif"))
    session.mark(0)
    assert {r["stack"] for r in _rows(folder)} == {"gone.tif", "s1.tif"}


def test_from_paths_keeps_rows_of_stacks_not_chosen(folder):
    first = AnnotationState.open_folder(folder)
    first.mark(1)  # s1.tif
    session = AnnotationState.from_paths([folder / "s2.tif", folder / "s10.tif"])
    assert session.root == folder.resolve()
    assert [e.name for e in session.entries] == ["s2.tif", "s10.tif"]
    session.mark(2)
    assert {r["stack"]: r["focus_index"] for r in _rows(folder)} == {"s1.tif": "1", "s2.tif": "2"}


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ZFocusError, match="no z-stacks"):
        AnnotationState.open_folder(tmp_path)
    with pytest.raises(ZFocusError, match="not a folder"):
        AnnotationState.open_folder(tmp_path / "nope")
    with pytest.raises(ZFocusError, match="not inside"):
        AnnotationState.from_paths([tmp_path / "x.tif"], root=tmp_path / "other")


def test_suggest_slice_classic_and_model(tmp_path):
    """Classic: the contrast dip of a simulated stack; model: the slice with z nearest 0."""
    pytest.importorskip("torch")
    from napari_zfocus.annotation.slice_suggestion import suggest_slice
    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.model.inference import Predictor
    from napari_zfocus.model.io import save_model
    from napari_zfocus.model.network import build_network
    from napari_zfocus.simulation import SimulationParams, simulate_stack

    sim = simulate_stack(SimulationParams(shape=(64, 64), n_slices=11, focus_index=5), seed=2)
    path = tmp_path / "s.tif"
    write_stack(path, sim.data, z_step_um=1.0, pixel_size_um=0.24)
    classic = suggest_slice(path, "s.tif", 1.0, 0.24)
    assert classic.source == "classic" and classic.name == "s.tif"
    assert abs(classic.index - sim.focus_index) <= 2

    config = ModelConfig(field_um=12, pixel_size_um=0.24, conv_features=(4, 8), fc_features=32)
    save_model(tmp_path / "m.zfm", build_network(config), config)
    predictor = Predictor.from_file(tmp_path / "m.zfm")
    found = suggest_slice(path, "s.tif", 1.0, 0.24, predictor)
    z = [p.z_um for p in predictor.predict_batch(sim.data.astype(np.float32), 0.24)]
    assert found.source == "model"
    assert found.index == int(np.argmin(np.abs(z)))


def test_a_symlink_out_of_the_folder_is_refused_when_the_stack_is_opened(tmp_path):
    import numpy as np

    from napari_zfocus.annotation.annotation_state import AnnotationState
    from napari_zfocus.data import write_stack
    from napari_zfocus.errors import DatasetError

    outside = tmp_path / "elsewhere.tif"
    write_stack(outside, np.ones((3, 8, 8), np.uint16), z_step_um=1.0, pixel_size_um=0.24)
    folder = tmp_path / "ds"
    folder.mkdir()
    write_stack(folder / "inside.tif", np.ones((3, 8, 8), np.uint16), z_step_um=1.0,
                pixel_size_um=0.24)
    (folder / "link.tif").symlink_to(outside)
    session = AnnotationState.open_folder(folder)
    names = [e.name for e in session.entries]
    assert session.stack_path(names.index("inside.tif")) == folder / "inside.tif"
    with pytest.raises(DatasetError, match="outside"):
        session.stack_path(names.index("link.tif"))


def _record(session: AnnotationState) -> list[tuple[str, object]]:
    """Every signal the session emits, in order."""
    events: list[tuple[str, object]] = []
    session.entry_changed.connect(lambda p: events.append(("entry", p)))
    session.selected.connect(lambda p: events.append(("selected", p)))
    session.saved.connect(lambda path: events.append(("saved", path.name)))
    return events


def test_every_change_is_announced_after_it_is_saved(folder):
    session = AnnotationState.open_folder(folder)
    events = _record(session)
    session.select(1)
    session.opened(5, 0.5, 0.1)
    assert events == [("selected", 1), ("entry", 1)]
    events.clear()
    session.mark(2)
    assert events == [("saved", "annotations.csv"), ("entry", 1)]
    events.clear()
    session.select(0)
    session.undo()  # back on stack 1: its row is gone from the file, then the views hear it
    assert events == [("selected", 0), ("saved", "annotations.csv"), ("entry", 1),
                      ("selected", 1)]
    events.clear()
    session.set_sizes(pixel_size_um=0.2)  # unmarked: nothing to save, the view still updates
    assert events == [("entry", 1)]
    session.set_sizes(pixel_size_um=0.2)  # no change: no event
    assert events == [("entry", 1)]


def test_suggestion_planning_and_dropping_a_source(folder):
    session = AnnotationState.open_folder(folder)
    events = _record(session)
    assert session.next_to_suggest("classic") == 0  # the current stack first
    assert session.accept_suggestion("s1.tif", 2, "classic") == 0
    assert session.accept_suggestion("gone.tif", 1, "classic") is None  # another dataset's
    assert events == [("entry", 0)]
    assert session.next_to_suggest("classic") == 1  # then the next unmarked one
    session.accept_suggestion("s2.tif", 1, "classic")
    assert session.next_to_suggest("classic") is None  # all prepared
    assert session.next_to_suggest("model") == 0  # a model's suggestions replace them
    events.clear()
    session.drop_suggestions("classic")
    assert events == [("entry", 0), ("entry", 1)]
    assert [e.state for e in session.entries] == [StackState.UNMARKED] * 3
    session.opened(5, 0.5, 0.1)
    session.mark(1)  # a marked stack needs no suggestion
    assert not session.needs_suggestion(0, "model")
    assert session.next_to_suggest("model") == 1


def test_captions_say_where_each_stack_stands(folder):
    from napari_zfocus.annotation import captions

    session = AnnotationState.open_folder(folder)
    session.opened(5, 0.5, 0.1)
    entry = session.entry()
    assert captions.entry_label(entry) == ("\u00b7  s1.tif   (unmarked)", "#9a9a9a")
    assert captions.suggestion_text(entry, computing=True) == "suggestion: computing\u2026"
    session.set_suggestion(2, "classic")
    assert captions.layer_name(entry) == "s1.tif ? slice 2"
    assert "press Enter to confirm" in overlay_text(session, 0)
    session.confirm_suggestion()
    assert captions.suggestion_text(entry) == "marked: slice 2 (suggestion:classic)"
    assert captions.stack_title(session) == "s1.tif  \u2014  5 slices  (1 of 3)"
    assert captions.entry_label(entry)[0] == "\u2713  s1.tif   (slice 2)"
