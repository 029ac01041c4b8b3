"""Z-stacks: read any common microscopy TIFF lazily, write ImageJ hyperstacks atomically.

Supported inputs:

* ImageJ hyperstacks (``spacing`` / ``unit`` / resolution metadata);
* OME-TIFF (``PhysicalSizeZ`` / ``PhysicalSizeX``);
* Micro-Manager TIFFs (``z-step_um`` / ``PixelSizeUm`` in their JSON metadata);
* plain multi-page TIFFs;
* a folder of 2-D TIFF slices, in natural order (``slice_2`` before ``slice_10``).

Pixel data stay on disk until a slice is asked for (see :mod:`._lazy`); opening a
multi-GB stack only reads its header.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile

from napari_zfocus._atomic import atomic_path
from napari_zfocus.bounds import MIN_STACK_SLICES, check_pixel_size_um, check_z_step
from napari_zfocus.errors import StackError, ZFocusError, describe

from ._lazy import FileListSource, LazyPlanes, as_dask
from ._tiff import (
    STRUCTURE_ERRORS,
    damage_check,
    first_line,
    open_tiff,
    pixel_dtype,
    plane_source,
    series_of,
)
from .metadata import PhysicalSizes, read_physical_sizes

#: File name endings read as TIFF (lower case).
TIFF_SUFFIXES = (".tif", ".tiff")

#: Axes tifffile uses for a run of pages whose meaning the file does not state.
_UNNAMED_AXES = ("Q", "I")


@dataclass
class ZStack:
    """A single-channel z-stack with its physical sampling.

    Attributes
    ----------
    data
        ``(Z, Y, X)`` pixels in the file's own dtype; a dask array (one chunk per slice)
        for files, so nothing is read before it is needed.
    z_step_um, pixel_size_um
        Distance between slices and pixel size in micrometres; ``None`` if unknown.
    path
        The file or folder the stack came from (``None`` for in-memory stacks).
    """

    data: np.ndarray | da.Array
    z_step_um: float | None
    pixel_size_um: float | None
    path: Path | None = None
    axes: str = field(default="ZYX", repr=False)  # axes of the source file, for messages

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise StackError(
                describe(self._name, f"expected a (Z, Y, X) stack, got shape {self.data.shape}")
            )

    @property
    def _name(self) -> str:
        return str(self.path) if self.path is not None else "<array>"

    @property
    def n_slices(self) -> int:
        """Number of z-slices."""
        return int(self.data.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(Z, Y, X)``."""
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    def slice(self, index: int) -> np.ndarray:
        """Read slice ``index`` as float32 ``(Y, X)``.

        Raises
        ------
        StackError
            If the index is out of range, the slice cannot be read (e.g. truncated
            file) or it holds NaN / infinite values.
        """
        if not -self.n_slices <= index < self.n_slices:
            raise StackError(
                describe(self._name, f"slice {index} out of range ({self.n_slices} slices)")
            )
        index = index % self.n_slices
        image = self._load(lambda: self.data[index], f"slice {index}")
        return self._checked(image, f"slice {index}")

    def to_numpy(self) -> np.ndarray:
        """Read the whole stack as float32 ``(Z, Y, X)`` (checked for NaN)."""
        stack = self._load(lambda: self.data, "the stack")
        return self._checked(stack, "the stack")

    def iter_slices(self) -> Iterator[np.ndarray]:
        """Yield the slices one at a time (float32), keeping memory to one slice."""
        for index in range(self.n_slices):
            yield self.slice(index)

    def validate(self) -> None:
        """Read every slice once; raise :class:`StackError` on the first bad one.

        Not done on open: it reads the whole file.
        """
        for _ in self.iter_slices():
            pass

    def _load(self, get: Any, what: str) -> np.ndarray:
        try:
            array = get()
            if isinstance(array, da.Array):
                array = array.compute(scheduler="synchronous")
            return np.asarray(array)
        except StackError:
            raise
        except Exception as exc:  # decoders raise many types (zlib.error, struct.error...)
            problem = f"cannot read {what}: {first_line(exc)}"
            raise StackError(describe(self._name, problem)) from exc

    def _checked(self, array: np.ndarray, what: str) -> np.ndarray:
        if np.iscomplexobj(array):
            raise StackError(describe(self._name, "complex-valued images are not supported"))
        out = array.astype(np.float32, copy=False)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(out).all():
            raise StackError(describe(self._name, f"{what} contains NaN or infinite values"))
        return out


def read_stack(
    path: str | os.PathLike[str],
    *,
    z_step_um: float | None = None,
    pixel_size_um: float | None = None,
    channel: int | None = None,
    timepoint: int | None = None,
    series: int | None = None,
    min_slices: int = MIN_STACK_SLICES,
    allow_2d: bool = False,
) -> ZStack:
    """Open a z-stack file or a folder of 2-D slices, lazily.

    Parameters
    ----------
    path
        A TIFF file (ImageJ, OME, Micro-Manager or plain) or a folder of 2-D TIFFs.
    z_step_um, pixel_size_um
        Override the values from the metadata (micrometres).
    channel, timepoint
        Which channel / time point to take from a file with C or T axes. Required
        when that axis has more than one entry.
    series
        Which image series of a multi-series file (e.g. stage positions). Required when
        the file holds several series of the same shape.
    min_slices
        Fewest slices accepted (a stack of 1 slice is a 2-D image).
    allow_2d
        Open a single 2-D image as a stack of one slice (with ``min_slices=1``), for the
        commands that read one image; checked for truncation like any stack.

    Raises
    ------
    StackError
        Missing, unreadable, truncated, RGB, 1-bit or 2-D input, ambiguous axes, z-step
        or pixel size outside :mod:`napari_zfocus.bounds`.
    """
    path = Path(path)
    z_override = _check_override(path, "z_step_um", z_step_um)
    px_override = _check_override(path, "pixel_size_um", pixel_size_um)
    if not path.exists():
        raise StackError(describe(path, "no such file or folder"))
    if path.is_dir():
        data, sizes, axes = _open_folder(path)
    else:
        data, sizes, axes = _open_file(path, channel, timepoint, series, allow_2d)
    if data.shape[0] < min_slices:
        raise StackError(
            describe(path, f"has {data.shape[0]} slice(s); a z-stack needs at least {min_slices}")
        )
    return ZStack(
        data=data,
        z_step_um=z_override if z_override is not None else sizes.z_step_um,
        pixel_size_um=px_override if px_override is not None else sizes.pixel_size_um,
        path=path,
        axes=axes,
    )


def stack_series(path: str | os.PathLike[str]) -> list[int]:
    """Indices of the image series :func:`read_stack` can open in ``path`` as stacks.

    A file with several series of the same shape (e.g. stage positions of a
    multi-position acquisition) needs ``read_stack(path, series=i)``; this lists the
    ``i``. A single-series file or a folder of slices gives ``[0]``.

    Raises
    ------
    StackError
        ``path`` is a file but not a readable TIFF.
    """
    path = Path(path)
    if path.is_dir():
        return [0]
    with damage_check(path), open_tiff(path) as tif:
        if not series_of(path, tif):
            raise StackError(describe(path, "contains no images"))
        return _same_shape_series(tif)


def write_stack(
    path: str | os.PathLike[str],
    data: np.ndarray | da.Array | ZStack,
    *,
    z_step_um: float,
    pixel_size_um: float,
) -> None:
    """Write a ``(Z, Y, X)`` stack as an ImageJ hyperstack, atomically.

    The z-step goes into ImageJ's ``spacing`` and the pixel size into the X/Y
    resolution, both in micrometres, so ImageJ/Fiji and :func:`read_stack` recover
    them. uint8, uint16 and float32 are kept; other integers become uint16 when they
    fit (else float32), other floats float32. A dask array is written slice by slice.
    """
    path = Path(path)
    if isinstance(data, ZStack):
        data = data.data
    z_step = _check_override(path, "z_step_um", z_step_um)
    pixel = _check_override(path, "pixel_size_um", pixel_size_um)
    if z_step is None or pixel is None:
        raise StackError(describe(path, "z_step_um and pixel_size_um are required"))
    if data.ndim != 3:
        raise StackError(describe(path, f"expected a (Z, Y, X) stack, got shape {data.shape}"))
    dtype = _imagej_dtype(path, data)

    def planes() -> Iterator[np.ndarray]:
        for index in range(data.shape[0]):
            yield np.asarray(data[index]).astype(dtype, copy=False)

    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            planes(),
            shape=tuple(data.shape),
            dtype=dtype,
            imagej=True,
            ome=False,
            resolution=(1.0 / pixel, 1.0 / pixel),
            metadata={"axes": "ZYX", "spacing": z_step, "unit": "um"},
        )


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


# --- helpers -------------------------------------------------------------------------


def _check_override(path: Path, name: str, value: float | None) -> float | None:
    """A z-step / pixel size given by the caller, within :mod:`napari_zfocus.bounds`."""
    if value is None:
        return None
    check = check_z_step if name == "z_step_um" else check_pixel_size_um
    try:
        return check(value, name)
    except ZFocusError as exc:
        raise StackError(describe(path, str(exc))) from None


def _imagej_dtype(path: Path, data: Any) -> np.dtype:
    dtype = np.dtype(data.dtype)
    if dtype in (np.uint8, np.uint16, np.float32):
        return dtype
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if np.issubdtype(dtype, np.integer):
        low, high = (np.asarray(v).item() for v in (data.min(), data.max()))
        return np.dtype(np.uint16 if low >= 0 and high <= 65535 else np.float32)
    if np.issubdtype(dtype, np.floating):
        return np.dtype(np.float32)
    raise StackError(describe(path, f"cannot write {dtype} pixels as an ImageJ stack"))


def _token(path: Path, *extra: Any) -> tuple[Any, ...]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, *extra)


def _open_file(
    path: Path, channel: int | None, timepoint: int | None, series: int | None,
    allow_2d: bool = False,
) -> tuple[da.Array, PhysicalSizes, str]:
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
    data = as_dask(planes, _token(path, chosen, tuple(plane_of_z)))
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
    same_shape = _same_shape_series(tif)
    if len(same_shape) > 1:
        raise StackError(
            describe(
                path,
                f"holds {len(same_shape)} image series of shape {tuple(all_series[0].shape)} "
                "(e.g. stage positions); choose one (--series N, or series=N in Python)",
            )
        )
    return 0


def _same_shape_series(tif: tifffile.TiffFile) -> list[int]:
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


def _open_folder(folder: Path) -> tuple[da.Array, PhysicalSizes, str]:
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
    token = _token(folder, tuple((f.name, f.stat().st_mtime_ns) for f in files))
    return as_dask(planes, token), sizes, "ZYX"
