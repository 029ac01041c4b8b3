"""The dataset interchange format: annotations.csv validation, round trip, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_zfocus.data import (
    ANNOTATION_COLUMNS,
    Annotation,
    Dataset,
    _lazy,
    read_dataset,
    write_annotations,
    write_stack,
)
from napari_zfocus.errors import DatasetError

HEADER = ",".join(ANNOTATION_COLUMNS)


def _stack(path: Path, n: int = 6) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.arange(n * 8 * 8, dtype=np.uint16).reshape(n, 8, 8)
    write_stack(path, data, z_step_um=1.0, pixel_size_um=0.24)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("a.tif", "b.tif", "sub/c.tif"):
        _stack(tmp_path / name)
    return tmp_path


def _csv(folder: Path, text: str) -> Path:
    path = folder / "annotations.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_read_valid_dataset(folder: Path) -> None:
    _csv(folder, f"{HEADER}\na.tif,3,1.0,0.24\nsub/c.tif,0,0.5,0.1\n")
    ds = read_dataset(folder)
    assert [a.stack for a in ds] == ["a.tif", "sub/c.tif"]
    a, c = ds.annotations
    assert (a.focus_index, a.z_step_um, a.pixel_size_um) == (3, 1.0, 0.24)
    assert ds.stack_path(c) == folder / "sub" / "c.tif"
    stack = ds.open_stack(c)  # the annotation's sizes win over the file's
    assert (stack.z_step_um, stack.pixel_size_um, stack.n_slices) == (0.5, 0.1, 6)
    assert c.z_um(2) == pytest.approx(1.0)


def test_all_bad_rows_are_reported_with_line_numbers(folder: Path) -> None:
    flat = folder / "flat.tif"
    tifffile.imwrite(flat, np.zeros((8, 8), np.uint16))
    csv_path = _csv(
        folder,
        f"{HEADER}\n"
        "a.tif,3,1.0,0.24\n"  # line 2: fine
        "missing.tif,1,1.0,0.24\n"  # 3: missing file
        "b.tif,6,1.0,0.24\n"  # 4: index out of range (6 slices)
        "sub/c.tif,two,1.0,0.24\n"  # 5: non-numeric index
        "a.tif,1,1.0,0.24\n"  # 6: duplicate stack
        "b.tif,1,nan,0.24\n"  # 7: NaN
        "b.tif,1,1.0,-0.2\n"  # 8: negative (and duplicate? no: rows 7, 8 fail)
        "flat.tif,0,1.0,0.24\n"  # 9: wrong dimensions
        "b.tif,1,1.0\n"  # 10: missing field
        "b.tif,-1,1.0,0.24\n",  # 11: negative index
    )
    with pytest.raises(DatasetError) as info:
        read_dataset(folder)
    err = info.value
    message = str(err)
    assert "\n" not in message and str(csv_path) in message
    assert "10 bad row(s)" not in message  # line 2 is fine
    assert "9 bad row(s)" in message
    by_line = {int(p.split(" line ")[1].split(":")[0]): p for p in err.problems}
    assert sorted(by_line) == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert "stack file not found: missing.tif" in by_line[3]
    assert "focus_index 6 out of range" in by_line[4] and "6 slices" in by_line[4]
    assert "focus_index must be an integer >= 0, got 'two'" in by_line[5]
    assert "duplicate stack 'a.tif' (first on line 2)" in by_line[6]
    assert "z_step_um must be a positive number of um within 0.01..100, got 'nan'" in by_line[7]
    assert (
        "pixel_size_um must be a positive number of um within 0.01..100, got '-0.2'" in by_line[8]
    )
    assert "flat.tif: is a single 2-D image" in by_line[9]
    assert "expected 4 fields, got 3" in by_line[10]
    assert "focus_index must be an integer >= 0, got '-1'" in by_line[11]
    assert all(p.startswith("annotations.csv line ") for p in err.problems)


def test_missing_column(folder: Path) -> None:
    _csv(folder, "stack,focus_index,z_step_um\na.tif,3,1.0\n")
    with pytest.raises(DatasetError, match="missing column.*pixel_size_um") as info:
        read_dataset(folder)
    assert info.value.problems == [
        (
            "annotations.csv line 1: missing column(s) pixel_size_um "
            "(header: stack,focus_index,z_step_um)"
        )
    ]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", "empty file"),
        (f'{HEADER}\n"a.tif,3,1.0,0.24\n', "malformed CSV"),
        (f"{HEADER},stack\na.tif,3,1.0,0.24,x\n", "duplicate column"),
    ],
)
def test_malformed_csv(folder: Path, text: str, pattern: str) -> None:
    _csv(folder, text)
    with pytest.raises(DatasetError, match=pattern):
        read_dataset(folder)


def test_missing_folder_or_csv(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        read_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="annotations.csv: not found"):
        read_dataset(tmp_path)


def test_absolute_stack_path_is_refused(folder: Path) -> None:
    _csv(folder, f"{HEADER}\n{folder / 'a.tif'},3,1.0,0.24\n")
    with pytest.raises(DatasetError, match="must be relative"):
        read_dataset(folder)


def test_check_stacks_reads_headers_only(folder: Path, monkeypatch) -> None:
    def no_pixels(self, planes):
        raise AssertionError("pixel data read while validating")

    monkeypatch.setattr(_lazy.MemmapSource, "read", no_pixels)
    monkeypatch.setattr(_lazy.TiffPageSource, "read", no_pixels)
    _csv(folder, f"{HEADER}\na.tif,3,1.0,0.24\nb.tif,5,1.0,0.24\n")
    assert len(read_dataset(folder)) == 2


def test_check_stacks_false_skips_files(folder: Path) -> None:
    _csv(folder, f"{HEADER}\nmissing.tif,30,1.0,0.24\n")
    assert read_dataset(folder, check_stacks=False).annotations[0].focus_index == 30


def test_excel_bom_and_blank_lines(folder: Path) -> None:
    (folder / "annotations.csv").write_bytes(
        ("\ufeff" + f"{HEADER}\r\na.tif,3,1.0,0.24\r\n\r\nb.tif,2.0,1,0.24\r\n").encode()
    )
    ds = read_dataset(folder)
    assert [a.focus_index for a in ds] == [3, 2]


def test_round_trip_keeps_extra_columns_and_their_order(folder: Path) -> None:
    text = (
        "annotator,stack,focus_index,note,z_step_um,pixel_size_um\n"
        'ann,a.tif,3,"needs, a comma",1.0,0.24\n'
        "bob,b.tif,2,,0.5,0.1\n"
    )
    _csv(folder, text)
    ds = read_dataset(folder)
    assert ds.annotations[0].extra == {"annotator": "ann", "note": "needs, a comma"}
    assert isinstance(ds, Dataset)
    write_annotations(folder, ds)
    assert (folder / "annotations.csv").read_text() == text


def test_write_new_annotations(tmp_path: Path) -> None:
    _stack(tmp_path / "x.tif")
    rows = [
        Annotation("x.tif", 2, 1.0, 0.24, {"who": "me"}),
    ]
    path = write_annotations(tmp_path, rows)
    assert path == tmp_path / "annotations.csv"
    assert path.read_text().splitlines() == [
        "stack,focus_index,z_step_um,pixel_size_um,who",
        "x.tif,2,1.0,0.24,me",
    ]
    assert read_dataset(tmp_path).annotations == rows


def test_invalid_annotation_is_not_written(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="focus_index must be an integer >= 0, got -3"):
        write_annotations(tmp_path, [Annotation("x.tif", -3, 1.0, 0.24)])
    assert not (tmp_path / "annotations.csv").exists()


def test_failed_write_leaves_old_file_intact(folder: Path) -> None:
    old = f"{HEADER}\na.tif,3,1.0,0.24\n"
    _csv(folder, old)

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("cannot format")

    rows = [
        Annotation("a.tif", 1, 1.0, 0.24, {"n": "1"}),
        Annotation("b.tif", 1, 1.0, 0.24, {"n": Unprintable()}),  # fails mid-file
    ]
    with pytest.raises(RuntimeError, match="cannot format"):
        write_annotations(folder, rows)
    assert (folder / "annotations.csv").read_text() == old
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
