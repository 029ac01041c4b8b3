"""Reading and writing z-stacks: metadata, overrides, axes, folders, laziness, writing.

Bad input (truncated, 2-D, RGB, NaN, non-TIFF files) is in test_stack_bad_input.py.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
from _stacks import _data

from napari_zfocus.data import _lazy, read_stack, write_stack
from napari_zfocus.errors import StackError

# --- metadata --------------------------------------------------------------------------


def test_imagej_hyperstack_metadata(tmp_path: Path) -> None:
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        _data(),
        imagej=True,
        resolution=(1 / 0.24, 1 / 0.24),
        metadata={"axes": "ZYX", "spacing": 1.0, "unit": "micron"},
    )
    stack = read_stack(path)
    assert (stack.z_step_um, stack.pixel_size_um) == (1.0, 0.24)
    assert stack.shape == (5, 16, 20) and stack.n_slices == 5
    assert isinstance(stack.data, da.Array)
    np.testing.assert_array_equal(stack.to_numpy(), _data())


def test_imagej_units_are_converted(tmp_path: Path) -> None:
    path = tmp_path / "nm.tif"
    tifffile.imwrite(
        path,
        _data(),
        imagej=True,
        resolution=(1 / 65.0, 1 / 65.0),
        metadata={"axes": "ZYX", "spacing": 500.0, "unit": "nm"},
    )
    stack = read_stack(path)
    assert stack.z_step_um == pytest.approx(0.5)
    assert stack.pixel_size_um == pytest.approx(0.065)


def test_ome_physical_sizes(tmp_path: Path) -> None:
    path = tmp_path / "s.ome.tif"
    tifffile.imwrite(
        path,
        _data(),
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.13,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 0.13,
            "PhysicalSizeZ": 2.0,
        },
    )
    stack = read_stack(path)
    assert (stack.z_step_um, stack.pixel_size_um) == (2.0, 0.13)


def test_ome_units_other_than_micrometre(tmp_path: Path) -> None:
    path = tmp_path / "s.ome.tif"
    tifffile.imwrite(
        path,
        _data(),
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 240.0,
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeZ": 0.001,
            "PhysicalSizeZUnit": "mm",
        },
    )
    stack = read_stack(path)
    assert stack.pixel_size_um == pytest.approx(0.24)
    assert stack.z_step_um == pytest.approx(1.0)


def test_micromanager_per_image_metadata(tmp_path: Path) -> None:
    """Micro-Manager's JSON tag 51123: PixelSizeUm, z-step from ZPositionUm."""
    path = tmp_path / "mm.tif"
    data = _data()
    with tifffile.TiffWriter(path) as tif:
        for i, plane in enumerate(data):
            meta = {"PixelSizeUm": 0.1625, "ZPositionUm": 100.0 + 0.5 * i}
            tif.write(plane, metadata=None, extratags=[(51123, "s", 0, json.dumps(meta), True)])
    stack = read_stack(path)
    assert (stack.z_step_um, stack.pixel_size_um) == (0.5, 0.1625)
    np.testing.assert_array_equal(stack.to_numpy(), data)


def test_plain_tiff_has_no_sizes_and_overrides_apply(tmp_path: Path) -> None:
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, _data())
    stack = read_stack(path)
    assert (stack.z_step_um, stack.pixel_size_um) == (None, None)
    stack = read_stack(path, z_step_um=0.3, pixel_size_um=0.1)
    assert (stack.z_step_um, stack.pixel_size_um) == (0.3, 0.1)


def test_overrides_beat_metadata(tmp_path: Path) -> None:
    path = tmp_path / "w.tif"
    write_stack(path, _data(), z_step_um=1.0, pixel_size_um=0.24)
    stack = read_stack(path, z_step_um=2.5)
    assert (stack.z_step_um, stack.pixel_size_um) == (2.5, 0.24)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "abc"])
def test_bad_override_is_rejected(tmp_path: Path, bad) -> None:
    path = tmp_path / "w.tif"
    write_stack(path, _data(), z_step_um=1.0, pixel_size_um=0.24)
    with pytest.raises(StackError, match="z_step_um must be a positive number"):
        read_stack(path, z_step_um=bad)


def test_inch_resolution_is_not_a_pixel_size(tmp_path: Path) -> None:
    """72 dpi is a print setting many programs write, not a physical pixel size."""
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, _data(), resolution=(72, 72), resolutionunit="INCH")
    assert read_stack(path).pixel_size_um is None
    tifffile.imwrite(path, _data(), resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
    assert read_stack(path).pixel_size_um == pytest.approx(0.5)


# --- axes ------------------------------------------------------------------------------


def _hyperstack(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(0).integers(0, 1000, (3, 4, 2, 8, 9), dtype=np.uint16)
    path = tmp_path / "tzc.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    return path, data


def test_extra_axes_need_an_explicit_choice(tmp_path: Path) -> None:
    path, _ = _hyperstack(tmp_path)
    with pytest.raises(StackError, match="timepoint="):
        read_stack(path, channel=0)
    with pytest.raises(StackError, match="channel="):
        read_stack(path, timepoint=0)
    with pytest.raises(StackError, match="channel 5 out of range"):
        read_stack(path, channel=5, timepoint=0)


def test_channel_and_timepoint_select_the_right_planes(tmp_path: Path) -> None:
    path, data = _hyperstack(tmp_path)
    stack = read_stack(path, channel=1, timepoint=2)
    np.testing.assert_array_equal(stack.to_numpy(), data[2, :, 1])


def test_channel_on_a_file_without_channels(tmp_path: Path) -> None:
    path = tmp_path / "z.tif"
    write_stack(path, _data(), z_step_um=1.0, pixel_size_um=0.2)
    assert read_stack(path, channel=0).n_slices == 5
    with pytest.raises(StackError, match="no C axis"):
        read_stack(path, channel=1)


# --- folder of slices ------------------------------------------------------------------


def test_folder_of_slices_in_natural_order(tmp_path: Path) -> None:
    folder = tmp_path / "slices"
    folder.mkdir()
    for i in (10, 2, 1, 20):
        tifffile.imwrite(
            folder / f"slice_{i}.tif",
            np.full((6, 7), i, np.uint16),
            resolution=(1e4 / 0.2, 1e4 / 0.2),
            resolutionunit="CENTIMETER",
        )
    (folder / "notes.txt").write_text("not an image")
    stack = read_stack(folder, z_step_um=0.5)
    assert stack.to_numpy()[:, 0, 0].tolist() == [1, 2, 10, 20]
    assert (stack.z_step_um, stack.pixel_size_um) == (0.5, pytest.approx(0.2))


def test_folder_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StackError, match="empty: folder contains no .tif"):
        read_stack(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    tifffile.imwrite(mixed / "a1.tif", np.zeros((6, 7), np.uint16))
    tifffile.imwrite(mixed / "a2.tif", np.zeros((6, 8), np.uint16))
    with pytest.raises(StackError, match=r"a2\.tif: shape \(6, 8\).*differs"):
        read_stack(mixed)
    nested = tmp_path / "nested"
    nested.mkdir()
    tifffile.imwrite(nested / "a1.tif", _data())
    with pytest.raises(StackError, match="a1.tif: expected a 2-D slice"):
        read_stack(nested)


# --- laziness --------------------------------------------------------------------------


def test_opening_reads_no_pixels_and_a_slice_reads_one_page(tmp_path, monkeypatch) -> None:
    path = tmp_path / "zlib.tif"
    data = np.random.default_rng(1).integers(0, 4000, (20, 32, 32), dtype=np.uint16)
    tifffile.imwrite(path, data, compression="zlib")  # compressed: decoded page by page
    reads: list[int] = []
    original = _lazy.TiffPageSource.read

    def counting(self, planes):
        reads.extend(planes)
        return original(self, planes)

    monkeypatch.setattr(_lazy.TiffPageSource, "read", counting)
    stack = read_stack(path)
    assert reads == []
    np.testing.assert_array_equal(stack.slice(7), data[7])
    assert reads == [7]


def test_big_contiguous_file_is_memory_mapped(tmp_path: Path) -> None:
    """Reading one slice of a 32 MB stack allocates about one slice, not the file."""
    path = tmp_path / "big.tif"
    data = np.zeros((64, 512, 512), np.uint16)
    data[40] = 7
    write_stack(path, data, z_step_um=1.0, pixel_size_um=0.24)
    del data
    tracemalloc.start()
    try:
        stack = read_stack(path)
        image = stack.slice(40)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.shape == (512, 512) and float(image.max()) == 7.0
    slice_bytes = 512 * 512 * 4
    assert peak < 4 * slice_bytes, f"peak {peak} bytes for a {64 * slice_bytes // 2} byte file"


# --- writing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "stored"),
    [
        (np.uint16, np.uint16),
        (np.uint8, np.uint8),
        (np.float64, np.float32),
        (np.int32, np.uint16),
        (np.bool_, np.uint8),
    ],
)
def test_write_stack_round_trip(tmp_path: Path, dtype, stored) -> None:
    path = tmp_path / "out.tif"
    data = (_data() % 200).astype(dtype)
    write_stack(path, data, z_step_um=0.7, pixel_size_um=0.0645)
    stack = read_stack(path)
    assert stack.data.dtype == stored
    assert (stack.z_step_um, stack.pixel_size_um) == (0.7, 0.0645)
    np.testing.assert_array_equal(stack.to_numpy(), data.astype(np.float32))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.imagej_metadata["spacing"] == pytest.approx(0.7)


def test_write_stack_from_dask_and_zstack(tmp_path: Path) -> None:
    source = tmp_path / "a.tif"
    write_stack(source, _data(), z_step_um=1.0, pixel_size_um=0.2)
    stack = read_stack(source)
    write_stack(tmp_path / "b.tif", stack, z_step_um=2.0, pixel_size_um=0.4)
    copy = read_stack(tmp_path / "b.tif")
    np.testing.assert_array_equal(copy.to_numpy(), _data())
    assert copy.z_step_um == 2.0


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "keep.tif"
    write_stack(path, _data(), z_step_um=1.0, pixel_size_um=0.2)
    before = path.read_bytes()

    class Exploding:
        """A stack whose third slice cannot be computed."""

        shape, ndim, dtype = (5, 16, 20), 3, np.dtype(np.uint16)

        def __getitem__(self, index):
            if index == 2:
                raise RuntimeError("disk on fire")
            return _data()[index]

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_stack(path, Exploding(), z_step_um=1.0, pixel_size_um=0.2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.tif"]  # no temporary left


def test_write_stack_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="expected a \\(Z, Y, X\\) stack"):
        write_stack(tmp_path / "x.tif", np.zeros((4, 4)), z_step_um=1.0, pixel_size_um=0.2)
    with pytest.raises(StackError, match="pixel_size_um must be a positive"):
        write_stack(tmp_path / "x.tif", _data(), z_step_um=1.0, pixel_size_um=-2)
    assert not (tmp_path / "x.tif").exists()
