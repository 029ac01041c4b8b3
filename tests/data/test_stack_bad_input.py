"""Reading bad z-stack files: 2-D, RGB, NaN, truncated, 1-bit, complex, non-TIFF, missing.

Each is refused with a one-line StackError naming the file (a cut file is refused or
read whole, never partly); also 2-D images opened with allow_2d and out-of-range slice
indices. Reading good stacks is in test_stack_io.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from _stacks import _data

from napari_zfocus.data import ZStack, read_stack, write_stack
from napari_zfocus.errors import StackError


def test_two_d_image_is_not_a_stack(tmp_path: Path) -> None:
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint16))
    with pytest.raises(StackError, match=r"flat\.tif: is a single 2-D image"):
        read_stack(path)


def test_rgb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((4, 16, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(StackError, match=r"rgb\.tif: is an RGB image"):
        read_stack(path)


def test_nan_slice_is_reported_when_read(tmp_path: Path) -> None:
    path = tmp_path / "nan.tif"
    data = np.ones((4, 8, 8), np.float32)
    data[2, 3, 3] = np.nan
    write_stack(path, data, z_step_um=1.0, pixel_size_um=0.2)
    stack = read_stack(path)  # no eager scan
    assert stack.slice(1).shape == (8, 8)
    with pytest.raises(StackError, match=r"nan\.tif: slice 2 contains NaN"):
        stack.slice(2)
    with pytest.raises(StackError, match="slice 2 contains NaN"):
        stack.validate()


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_tiff(tmp_path: Path, compression, keep) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, _data(8, 32, 32), compression=compression)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(StackError, match=r"cut\.tif: .*truncated"):
        read_stack(path).validate()


def test_truncated_imagej_pixel_data(tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    write_stack(path, _data(8, 32, 32), z_step_um=1.0, pixel_size_um=0.2)
    raw = path.read_bytes()
    path.write_bytes(raw[:3000])
    with pytest.raises(StackError, match=r"cut\.tif: .*truncated"):
        read_stack(path)


def _write_format(path: Path, data: np.ndarray, kind: str) -> None:
    if kind == "imagej":
        write_stack(path, data, z_step_um=1.0, pixel_size_um=0.2)
    elif kind == "ome":
        tifffile.imwrite(path, data, ome=True, metadata={"axes": "ZYX"})
    elif kind == "zlib":
        tifffile.imwrite(path, data, imagej=True, compression="zlib", metadata={"axes": "ZYX"})
    else:  # one IFD per page, pages not contiguous
        with tifffile.TiffWriter(path) as tif:
            for plane in data:
                tif.write(plane, contiguous=False, metadata=None)


@pytest.mark.parametrize("kind", ["imagej", "ome", "zlib", "pages"])
def test_every_cut_is_refused_or_reads_whole(tmp_path: Path, kind: str) -> None:
    """A file cut at any byte is refused (StackError) or still holds every slice intact:
    never fewer slices, a 2-D image, or another exception type."""
    full = tmp_path / "full.tif"
    data = _data(4, 16, 16)
    _write_format(full, data, kind)
    raw = full.read_bytes()
    cut = tmp_path / "cut.tif"
    for end in range(8, len(raw), max(1, len(raw) // 60)):
        cut.write_bytes(raw[:end])
        for allow_2d in (False, True):
            try:
                read = read_stack(cut, min_slices=1, allow_2d=allow_2d).to_numpy()
            except StackError:
                continue
            np.testing.assert_array_equal(read, data, err_msg=f"cut at byte {end}")


def test_allow_2d_opens_an_image_as_one_slice(tmp_path: Path) -> None:
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.full((16, 16), 7, np.uint16))
    stack = read_stack(path, min_slices=1, allow_2d=True)
    assert stack.shape == (1, 16, 16) and float(stack.slice(0)[0, 0]) == 7.0
    with pytest.raises(StackError, match="channel=1 given but it is a 2-D image"):
        read_stack(path, min_slices=1, allow_2d=True, channel=1)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (np.zeros((3, 8, 8), bool), "1-bit"),
        (np.zeros((3, 8, 8), np.complex64), "complex"),
    ],
)
def test_mask_and_complex_pixels_are_refused(tmp_path: Path, data, match) -> None:
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, data)
    with pytest.raises(StackError, match=match):
        read_stack(path)


def test_non_tiff_and_missing(tmp_path: Path) -> None:
    text = tmp_path / "notes.tif"
    text.write_text("hello, not an image")
    with pytest.raises(StackError, match=r"notes\.tif: not a readable TIFF"):
        read_stack(text)
    with pytest.raises(StackError, match=r"missing\.tif: no such file"):
        read_stack(tmp_path / "missing.tif")


def test_messages_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, _data(8, 32, 32))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(StackError) as info:
        read_stack(path).validate()
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_slice_index_out_of_range(tmp_path: Path) -> None:
    stack = ZStack(_data(), 1.0, 0.2)
    assert stack.slice(-1).dtype == np.float32
    with pytest.raises(StackError, match="slice 5 out of range"):
        stack.slice(5)

