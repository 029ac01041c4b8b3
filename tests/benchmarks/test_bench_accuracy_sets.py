"""bench_accuracy reuses any annotated test set as it is and never simulates over other files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# The benchmarks are not installed: import them from their folder.
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import bench_accuracy

from napari_zfocus.data import Annotation, write_annotations, write_stack


def test_another_worlds_set_of_any_size_is_used_as_it_is(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "world"
    folder.mkdir()
    data = np.full((5, 16, 16), 1000, np.uint16)
    write_stack(folder / "s.tif", data, z_step_um=1.0, pixel_size_um=0.24)
    write_annotations(folder, [Annotation("s.tif", 2, 1.0, 0.24)])
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert bench_accuracy.ensure_set(folder, 30, seed=2) == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert "using its 1 stacks" in capsys.readouterr().err


def test_a_folder_of_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not a dataset"):
        bench_accuracy.ensure_set(tmp_path, 2, seed=2)
    assert (tmp_path / "notes.txt").read_text() == "mine"
