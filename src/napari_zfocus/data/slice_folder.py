"""A folder of 2-D TIFF slices read as one lazy z-stack, in natural order.

``slice_2`` comes before ``slice_10``; every slice must have the shape and dtype of the
first, whose metadata give the physical sizes. Only headers are read on open.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dask.array as da

from napari_zfocus.errors import StackError, describe

from ._lazy import FileListSource, LazyPlanes, as_dask, file_token
from ._tiff import damage_check, open_tiff, pixel_dtype, plane_source, series_of
from .metadata import PhysicalSizes, read_physical_sizes

__all__ = ["TIFF_SUFFIXES", "natural_key", "open_slice_folder", "tiff_files_in"]

#: File name endings read as TIFF (lower case).
TIFF_SUFFIXES = (".tif", ".tiff")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key ordering ``slice_2`` before ``slice_10`` (digit runs compare as numbers)."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


def tiff_files_in(folder: Path) -> list[Path]:
    """The visible ``.tif`` / ``.tiff`` files of ``folder``, in natural order."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in TIFF_SUFFIXES
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def open_slice_folder(folder: Path) -> tuple[da.Array, PhysicalSizes, str]:
    """Lazy ``(Z, Y, X)`` pixels, physical sizes and axes of a folder of 2-D slices."""
    files = tiff_files_in(folder)
    if not files:
        raise StackError(describe(folder, "folder contains no .tif/.tiff slices"))
    shape = dtype = None
    sizes = PhysicalSizes()
    for number, file in enumerate(files):
        with damage_check(file), open_tiff(file) as tif:
            if not series_of(file, tif):
                raise StackError(describe(file, "contains no images"))
            first = tif.series[0]
            this_shape, this_dtype = tuple(first.shape), pixel_dtype(file, first.dtype)
            if "S" in first.axes:
                raise StackError(describe(file, "is an RGB image; save one grey channel instead"))
            if len(this_shape) != 2:
                raise StackError(
                    describe(file, f"expected a 2-D slice in a folder of slices, got {this_shape}")
                )
            plane_source(file, tif, 0, 1, this_shape)  # truncation check, header only
            if number == 0:
                shape, dtype = this_shape, this_dtype
                sizes = read_physical_sizes(tif)
            elif this_shape != shape or this_dtype != dtype:
                raise StackError(
                    describe(
                        file,
                        f"shape {this_shape} {this_dtype} differs from "
                        f"{files[0].name} {shape} {dtype}",
                    )
                )
    assert shape is not None and dtype is not None
    planes = LazyPlanes(FileListSource(files), range(len(files)), shape, dtype)
    token = file_token(folder, tuple((f.name, f.stat().st_mtime_ns) for f in files))
    return as_dask(planes, token), sizes, "ZYX"
