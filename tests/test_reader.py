"""The npe2 reader: physical scale, metadata, napari's "None if not mine" convention."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_zfocus._reader import get_reader
from napari_zfocus.data import write_stack
from napari_zfocus.errors import StackError


def _stack(path: Path, z_step: float = 1.0, pixel: float = 0.24) -> np.ndarray:
    data = np.random.default_rng(0).integers(100, 4000, (6, 24, 32), dtype=np.uint16)
    write_stack(path, data, z_step_um=z_step, pixel_size_um=pixel)
    return data


def test_layer_has_physical_scale_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "cells.tif"
    data = _stack(path)
    reader = get_reader(str(path))
    assert reader is not None
    [(layer_data, kwargs, kind)] = reader(str(path))
    assert kind == "image"
    assert kwargs["scale"] == (1.0, 0.24, 0.24)
    assert kwargs["name"] == "cells"
    assert kwargs["metadata"] == {
        "path": str(path),
        "z_step_um": 1.0,
        "pixel_size_um": 0.24,
        "n_slices": 6,
    }
    assert isinstance(layer_data, da.Array)  # lazy
    np.testing.assert_array_equal(np.asarray(layer_data), data)
    low, high = kwargs["contrast_limits"]
    assert 100 <= low < high <= 4000


def test_unknown_sizes_show_unit_scale(tmp_path: Path) -> None:
    path = tmp_path / "plain.tiff"
    tifffile.imwrite(path, np.zeros((5, 8, 8), np.uint16), photometric="minisblack")
    [(_, kwargs, _)] = get_reader([str(path)])([str(path)])
    assert kwargs["scale"] == (1.0, 1.0, 1.0)
    assert kwargs["metadata"]["z_step_um"] is None


def test_folder_of_slices(tmp_path: Path) -> None:
    for i in range(3):
        tifffile.imwrite(tmp_path / f"z{i}.tif", np.full((8, 8), i, np.uint16))
    [(data, _, _)] = get_reader(str(tmp_path))(str(tmp_path))
    assert np.asarray(data)[:, 0, 0].tolist() == [0, 1, 2]


def test_not_ours_returns_none(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    assert get_reader(str(tmp_path / "x.png")) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert get_reader(str(empty)) is None
    assert get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]) is None


def test_broken_tiff_raises_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.tif"
    _stack(path)
    path.write_bytes(path.read_bytes()[:1000])
    reader = get_reader(str(path))
    assert reader is not None  # ours by name: the error must say what is wrong
    with pytest.raises(StackError, match=r"broken\.tif: .*truncated") as info:
        reader(str(path))
    assert "\n" not in str(info.value)


def test_viewer_open_uses_the_physical_scale(make_napari_viewer, tmp_path: Path) -> None:
    path = tmp_path / "stack.tif"
    _stack(path, z_step=1.0, pixel=0.24)
    viewer = make_napari_viewer()
    try:
        layers = viewer.open(str(path), plugin="napari-zfocus")
    except Exception as exc:  # plugin not registered: package not installed editable
        if "napari-zfocus" in str(exc) and "plugin" in str(exc).lower():
            pytest.skip(f"napari-zfocus plugin not registered: {exc}")
        raise
    assert len(layers) == 1
    assert tuple(layers[0].scale) == pytest.approx((1.0, 0.24, 0.24))
    assert layers[0].metadata["z_step_um"] == 1.0


def test_multi_position_file_opens_one_layer_per_series(tmp_path: Path) -> None:
    path = tmp_path / "positions.tif"
    rng = np.random.default_rng(1)
    stacks = [rng.integers(100, 4000, (5, 16, 20), dtype=np.uint16) for _ in range(3)]
    with tifffile.TiffWriter(path) as tif:  # three series of the same shape
        for s in stacks:
            tif.write(s, metadata={"axes": "ZYX"})
    layers = get_reader(str(path))(str(path))
    assert [kw["name"] for _, kw, _ in layers] == [f"positions [series {i}]" for i in range(3)]
    for (data, _, kind), expected in zip(layers, stacks, strict=True):
        assert kind == "image"
        np.testing.assert_array_equal(np.asarray(data), expected)
