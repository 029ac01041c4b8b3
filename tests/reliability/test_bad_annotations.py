"""Every bad annotations.csv or dataset folder is refused up front and touches nothing.

A hostile user hands eval and train annotations.csv files with bad rows, paths or
symlinks leading out of the dataset folder, symlink aliases and loops, FIFOs, truncated
stacks, and files given where a folder belongs; simulate refuses to write a dataset the
other commands would reject. Each is refused (exit 2, one line naming the file and the
line, no traceback) and the dataset stays byte for byte as it was. Bad stack files
themselves are in test_bad_data.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _bad_stacks import PX, _cut, _no_hang, write_bad_files
from _reliability import Snapshot, assert_refused, run_cli

from _tiny import write_noise_dataset

HEADER = "stack,focus_index,z_step_um,pixel_size_um\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One of every bad file (and good references), written once for the module."""
    return write_bad_files(tmp_path_factory.mktemp("bad_data"))


# --- annotations.csv ----------------------------------------------------------------------


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    """A valid 2-stack dataset (7 slices of 64 px at 0.24 um/px, focus 3)."""
    return write_noise_dataset(tmp_path / "ds", 2, (7, 64, 64), 3, pixel_size_um=PX)


def _rows(ds: Path, *rows: str) -> Path:
    csv = ds / "annotations.csv"
    csv.write_text(HEADER + "".join(r + "\n" for r in rows))
    return csv


#: (rows of annotations.csv, words naming the problem). Each leaves s0/s1 untouched.
CSV_CASES = [
    ((), "0 annotated stack"),  # header only: metrics over nothing
    (("../../x.tif,3,1.0,0.24",), "line 2"),
    (("sub/../../s0.tif,3,1.0,0.24",), "must not leave the dataset folder"),
    (("/etc/passwd,3,1.0,0.24",), "must be relative"),
    (("C:/data/s0.tif,3,1.0,0.24",), "must be relative"),
    (("s0.tif,7,1.0,0.24",), "focus_index 7 out of range"),
    (("s0.tif,-1,1.0,0.24",), "focus_index must be an integer >= 0"),
    (("s0.tif,2.5,1.0,0.24",), "focus_index must be an integer"),
    (("s0.tif,3,0,0.24",), "z_step_um must be a positive number of um within 0.01..100"),
    (("s0.tif,3,1000,0.24",), "z_step_um"),
    (("s0.tif,3,1e-9,0.24",), "z_step_um"),
    (("s0.tif,3,nan,0.24",), "z_step_um"),
    (("s0.tif,3,1.0,0",), "pixel_size_um must be a positive number of um within 0.01..100"),
    (("s0.tif,3,1.0,500",), "pixel_size_um"),
    (("s0.tif,3,1.0,inf",), "pixel_size_um"),
    (("s0.tif,3,1.0,5",), "pixel size 5 um/px is"),  # valid row, too coarse for the model
    (("s0.tif,3,100,0.24", "s1.tif,3,100,0.24"), "only 1 of its 7 slices"),  # absurd steps
    (("s0.tif,3,1.0,0.24", "s0.tif,3,1.0,0.24"), "duplicate stack"),
    (("s0.tif,3,1.0",), "expected 4 fields"),
    (("nope.tif,3,1.0,0.24",), "stack file not found"),
    # float() takes underscores and non-ASCII digits: 1_0 was slice 10, 0_5 a 5 um step
    (("s0.tif,1_0,1.0,0.24",), "focus_index must be an integer >= 0, got '1_0'"),
    (("s0.tif,3,0_5,0.24",), "z_step_um must be a positive number of um within 0.01..100, "
                             "got '0_5'"),
    (("s0.tif,3,1.0,0.2_4",), "pixel_size_um"),
    (("s0.tif,\u0664,1.0,0.24",), "focus_index"),  # Arabic-Indic 4
    (("s0.tif,3,1.0 um,0.24",), "z_step_um"),
    (("s\x000.tif,3,1.0,0.24",), "contains a NUL character"),  # was an internal error
]


@pytest.mark.parametrize(("rows", "words"), CSV_CASES, ids=[w for _, w in CSV_CASES])
def test_bad_annotations_are_refused_by_eval(files: dict[str, Path], ds: Path,
                                             rows: tuple[str, ...], words: str) -> None:
    csv = _rows(ds, *rows)
    snap = Snapshot(ds)
    line = assert_refused(run_cli("eval", files["model"], ds, "--no-progress"), ds.name)
    assert words in line
    assert "annotations.csv" in line or "s0.tif" in line
    snap.assert_unchanged()
    assert csv.exists()


@pytest.mark.parametrize("rows", [(), ("../x.tif,3,1.0,0.24",), ("s0.tif,3,1.0,1000",)],
                         ids=["header only", "escape", "pixel size"])
def test_bad_annotations_are_refused_by_train(ds: Path, rows: tuple[str, ...]) -> None:
    _rows(ds, *rows)
    out = ds.parent / "m.zfm"
    snap = Snapshot(ds)
    assert_refused(run_cli("train", ds, "--out", out, "--steps", "1", "--no-progress"),
                   "annotations.csv")
    snap.assert_unchanged()
    assert not out.exists()


def test_symlink_out_of_the_folder_is_refused(files: dict[str, Path], ds: Path) -> None:
    os.symlink(files["stack"], ds / "link.tif")  # a real stack, but outside the dataset
    _rows(ds, "link.tif,3,1.0,0.24")
    snap = Snapshot(ds)
    line = assert_refused(run_cli("eval", files["model"], ds, "--no-progress"),
                          "annotations.csv", "line 2")
    assert "points outside the folder" in line
    snap.assert_unchanged()


def test_truncated_stack_in_a_dataset_is_refused(files: dict[str, Path], ds: Path) -> None:
    _cut(ds / "s1.tif", ds / "s1.tif")
    snap = Snapshot(ds)
    line = assert_refused(run_cli("eval", files["model"], ds, "--no-progress"), "annotations.csv")
    assert "s1.tif" in line and "truncated" in line
    assert_refused(run_cli("train", ds, "--out", ds.parent / "m.zfm", "--steps", "1",
                           "--no-progress"), "s1.tif")
    snap.assert_unchanged()


@pytest.mark.parametrize(("kind", "words"), [("folder", "is a folder, not a file"),
                                              ("fifo", "is a named pipe (FIFO)")])
def test_annotations_csv_that_is_not_a_file_says_what_it_is(
        files: dict[str, Path], ds: Path, kind: str, words: str) -> None:
    """Not "not found" (it exists): the line says what is there instead."""
    csv = ds / "annotations.csv"
    csv.unlink()
    if kind == "folder":
        csv.mkdir()
    else:
        os.mkfifo(csv)
    line = assert_refused(run_cli("eval", files["model"], ds, "--no-progress"), csv)
    assert words in line and "not found" not in line


@pytest.mark.parametrize("command", ["train", "eval", "eval --baseline-fit"])
def test_a_file_given_as_the_dataset_folder_is_named_a_file(
        files: dict[str, Path], ds: Path, command: str) -> None:
    """``zfocus train ds/annotations.csv``: it exists, it is a file, not a missing folder."""
    csv = ds / "annotations.csv"
    argv = {"train": ["train", csv, "--out", ds.parent / "m.zfm", "--steps", "1"],
            "eval": ["eval", files["model"], csv],
            "eval --baseline-fit": ["eval", files["model"], ds, "--baselines",
                                    "--baseline-fit", csv]}[command]
    snap = Snapshot(ds)
    line = assert_refused(run_cli(*argv), csv, "is a file, not a folder")
    assert "not found" not in line
    if command.endswith("fit"):
        assert "--baseline-fit" in line
    snap.assert_unchanged()


def test_writing_annotations_refuses_what_reading_refuses(tmp_path: Path) -> None:
    from napari_zfocus.data import Annotation, write_annotations
    from napari_zfocus.errors import DatasetError

    for bad in (Annotation("../x.tif", 1, 1.0, PX), Annotation("x.tif", 1, 1000.0, PX),
                Annotation("x.tif", 1, 1.0, 0.0), Annotation("/abs/x.tif", 1, 1.0, PX)):
        with pytest.raises(DatasetError, match="refusing to write"):
            write_annotations(tmp_path, [bad])
    assert not (tmp_path / "annotations.csv").exists()


# --- simulate never writes a dataset the other commands reject ----------------------------


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--slices", "1"], "--slices"),
        (["--slices", "2"], "--slices"),
        (["--focus-index", "31"], "--focus-index"),
        (["--condenser-na", "1.35"], "--condenser-na"),
        (["--pixel-size", "50"], "--pixel-size"),
        (["--cells", "0"], "--cells"),
    ],
    ids=["1 slice", "2 slices", "focus outside", "condenser NA", "pixel size", "no cells"],
)
def test_simulate_refuses_an_unusable_dataset(tmp_path: Path, flags: list[str],
                                              named: str) -> None:
    out = tmp_path / "sim"
    assert_refused(run_cli("simulate", out, "--stacks", "1", "--quiet", *flags), named)
    assert not out.exists()


# --- symlinks and FIFOs the hostile tester found answered (or hung on) ----------------------


def test_symlink_alias_of_an_annotated_stack_is_refused(files: dict[str, Path],
                                                        ds: Path) -> None:
    """Two names of one stack with two focus indices: one stack cannot have both."""
    os.symlink("s0.tif", ds / "same.tif")
    _rows(ds, "s0.tif,3,1.0,0.24", "s1.tif,3,1.0,0.24", "same.tif,5,1.0,0.24")
    snap = Snapshot(ds)
    line = assert_refused(run_cli("eval", files["model"], ds, "--no-progress"),
                          "annotations.csv", "line 4", "line 2", "same.tif", "s0.tif")
    assert "duplicate stack" in line
    snap.assert_unchanged()


def test_symlink_loop_and_fifo_stacks_are_refused_by_line(files: dict[str, Path],
                                                          ds: Path) -> None:
    os.symlink("loop.tif", ds / "loop.tif")
    os.mkfifo(ds / "fifo.tif")
    for name, words in (("loop.tif", "symlink loop"), ("fifo.tif", "not a regular file")):
        _rows(ds, "s0.tif,3,1.0,0.24", f"{name},3,1.0,0.24")
        snap = Snapshot(ds)
        for command in (["eval", files["model"], ds, "--no-progress"],
                        ["train", ds, "--out", ds.parent / "m.zfm", "--steps", "1",
                         "--no-progress"]):
            with _no_hang():
                line = assert_refused(run_cli(*command), "annotations.csv", "line 3", name)
            assert words in line
        snap.assert_unchanged()
        assert not (ds.parent / "m.zfm").exists()

