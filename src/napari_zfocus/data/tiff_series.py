"""Open one TIFF file as a lazy z-stack: choose its image series and find its z axis.

ImageJ, OME, Micro-Manager and plain multi-page TIFFs name their axes differently; this
picks the series (one of several stage positions must be chosen), the channel and time
point, and maps every z-slice to a flat page index, reading only the header.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile

from napari_zfocus.errors import StackError, describe

from ._lazy import LazyPlanes, as_dask, file_token
from ._tiff import (
    STRUCTURE_ERRORS,
    damage_check,
    first_line,
    open_tiff,
    pixel_dtype,
    plane_source,
)
from .metadata import PhysicalSizes, read_physical_sizes

__all__ = ["open_tiff_stack", "same_shape_series"]

#: Axes tifffile uses for a run of pages whose meaning the file does not state.
_UNNAMED_AXES = ("Q", "I")


def open_tiff_stack(
    path: Path, channel: int | None, timepoint: int | None, series: int | None,
    allow_2d: bool = False,
) -> tuple[da.Array, PhysicalSizes, str]:
    """Lazy ``(Z, Y, X)`` pixels, physical sizes and axes of a TIFF file (header only)."""
    with damage_check(path), open_tiff(path) as tif:
        try:
            chosen = _choose_series(path, tif, series)
            selected = tif.series[chosen]
            axes, shape = selected.axes, tuple(selected.shape)
            plane_of_z = _planes_for_z(path, axes, shape, channel, timepoint, allow_2d)
            yx = (shape[-2], shape[-1])
            dtype = pixel_dtype(path, selected.dtype)
            n_planes = math.prod(shape[:-2])
            source = plane_source(path, tif, chosen, n_planes, yx)
            sizes = read_physical_sizes(tif)
        except StackError:
            raise
        except STRUCTURE_ERRORS as exc:
            problem = f"cannot read TIFF structure ({first_line(exc)})"
            raise StackError(describe(path, problem)) from exc
    planes = LazyPlanes(source, plane_of_z, yx, dtype)
    data = as_dask(planes, file_token(path, chosen, tuple(plane_of_z)))
    return data, sizes, axes


def _choose_series(path: Path, tif: tifffile.TiffFile, series: int | None) -> int:
    all_series = tif.series
    if not all_series:
        raise StackError(describe(path, "contains no images"))
    if series is not None:
        if not 0 <= series < len(all_series):
            raise StackError(
                describe(path, f"series {series} out of range ({len(all_series)} series)")
            )
        return series
    same_shape = same_shape_series(tif)
    if len(same_shape) > 1:
        raise StackError(
            describe(
                path,
                f"holds {len(same_shape)} image series of shape {tuple(all_series[0].shape)} "
                "(e.g. stage positions); choose one (--series N, or series=N in Python)",
            )
        )
    return 0


def same_shape_series(tif: tifffile.TiffFile) -> list[int]:
    """Indices of the series shaped like the first (positions of one acquisition)."""
    first = tuple(tif.series[0].shape)
    return [i for i, s in enumerate(tif.series) if tuple(s.shape) == first]


def _planes_for_z(
    path: Path,
    axes: str,
    shape: tuple[int, ...],
    channel: int | None,
    timepoint: int | None,
    allow_2d: bool = False,
) -> list[int]:
    """Flat plane indices of the z-slices at the chosen channel / time point."""
    if "S" in axes:
        raise StackError(
            describe(path, f"is an RGB image (axes {axes}); save one grey channel instead")
        )
    if axes[-2:] != "YX":
        raise StackError(describe(path, f"unsupported axes {axes}: planes must be Y, X"))
    lead_axes, lead_shape = axes[:-2], shape[:-2]
    if not lead_axes:
        if allow_2d:
            for name, value in (("channel", channel), ("timepoint", timepoint)):
                if value not in (None, 0):
                    raise StackError(describe(path, f"{name}={value} given but it is a 2-D image"))
            return [0]
        raise StackError(describe(path, f"is a single 2-D image {shape}, not a z-stack"))
    z_axis = _find_z_axis(path, axes, lead_axes)
    index: list[Any] = []
    for ax, size in zip(lead_axes, lead_shape, strict=True):
        if ax == z_axis:
            index.append(np.arange(size))
        elif ax == "C":
            index.append(_pick_index(path, "channel", channel, size, axes))
        elif ax == "T":
            index.append(_pick_index(path, "timepoint", timepoint, size, axes))
        elif size == 1:
            index.append(0)
        else:
            raise StackError(
                describe(path, f"has an extra axis {ax!r} of size {size} (axes {axes})")
            )
    for name, value, ax in (("channel", channel, "C"), ("timepoint", timepoint, "T")):
        if value not in (None, 0) and ax not in lead_axes:
            raise StackError(describe(path, f"{name}={value} given but the file has no {ax} axis"))
    flat = np.ravel_multi_index(tuple(np.broadcast_arrays(*index)), lead_shape)
    return [int(i) for i in np.atleast_1d(flat)]


def _find_z_axis(path: Path, axes: str, lead_axes: str) -> str:
    if "Z" in lead_axes:
        return "Z"
    unnamed = [ax for ax in lead_axes if ax in _UNNAMED_AXES]
    if len(unnamed) == 1:
        return unnamed[0]  # pages of unstated meaning: a plain multi-page stack
    hint = ""
    if lead_axes == "T":
        hint = (
            "; if its time points are really z-slices, "
            "set slices/frames in Fiji (Image > Properties)"
        )
    raise StackError(describe(path, f"has no z axis (axes {axes}){hint}"))


def _pick_index(path: Path, name: str, value: int | None, size: int, axes: str) -> int:
    if value is None:
        if size == 1:
            return 0
        raise StackError(
            describe(
                path,
                f"has {size} entries along {name} (axes {axes}); choose one "
                f"(--{name} N, or {name}=N in Python)",
            )
        )
    if not 0 <= value < size:
        raise StackError(describe(path, f"{name} {value} out of range (0..{size - 1})"))
    return int(value)
