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

import contextlib
import logging
import math
import os
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile

from napari_zfocus._atomic import atomic_path
from napari_zfocus.errors import StackError, describe

from ._lazy import FileListSource, LazyPlanes, MemmapSource, TiffPageSource, as_dask
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
            problem = f"cannot read {what}: {_first_line(exc)}"
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
    min_slices: int = 2,
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

    Raises
    ------
    StackError
        Missing, unreadable, truncated, RGB or 2-D input, ambiguous axes, bad overrides.
    """
    path = Path(path)
    z_override = _check_override(path, "z_step_um", z_step_um)
    px_override = _check_override(path, "pixel_size_um", pixel_size_um)
    if not path.exists():
        raise StackError(describe(path, "no such file or folder"))
    if path.is_dir():
        data, sizes, axes = _open_folder(path)
    else:
        data, sizes, axes = _open_file(path, channel, timepoint, series)
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
    with _damage_check(path), _open_tiff(path) as tif:
        if not tif.series:
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_override(path: Path, name: str, value: float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise StackError(describe(path, f"{name} must be a positive number, got {value!r}"))
    return number


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


#: tifffile log messages that mean the file structure is cut off or broken.
_DAMAGE_HINTS = (
    "invalid page offset",
    "invalid value offset",
    "corrupted",
    "failed to reshape",
    "truncated",
)


_LOG_LOCK = threading.RLock()


class _TiffLogCapture(logging.Handler):
    """Collects tifffile's warnings while a header is parsed (instead of printing them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _damage_check(path: Path) -> Iterator[None]:
    """Turn tifffile's "invalid offset" warnings into a StackError naming the file.

    tifffile reads a cut-off file as far as it can and only logs the damage, which
    would otherwise show a truncated 31-slice stack as a "2-D image".
    """
    logger = logging.getLogger("tifffile")
    capture = _TiffLogCapture()
    _LOG_LOCK.acquire()  # propagate is global state: one header parse at a time
    logger.addHandler(capture)
    propagate, logger.propagate = logger.propagate, False

    def damage() -> StackError | None:
        hits = [m for m in capture.messages if any(h in m.lower() for h in _DAMAGE_HINTS)]
        if not hits:
            return None
        # Drop tifffile's "<tifffile.TiffFile 'x.tif'> " prefix: the path leads anyway.
        detail = re.sub(r"^(<[^>]*>\s*)+", "", _first_line(Exception(hits[0])))
        return StackError(describe(path, f"file is truncated or damaged ({detail})"))

    try:
        yield
    except StackError as exc:
        found = damage()
        if found is None:
            raise
        raise found from exc  # the damage explains the odd shape better
    finally:
        logger.removeHandler(capture)
        logger.propagate = propagate
        _LOG_LOCK.release()
    found = damage()
    if found is not None:
        raise found


def _open_tiff(path: Path) -> tifffile.TiffFile:
    try:
        return tifffile.TiffFile(path)
    except tifffile.TiffFileError as exc:
        raise StackError(describe(path, f"not a readable TIFF file ({_first_line(exc)})")) from exc
    except (OSError, ValueError, struct.error) as exc:
        raise StackError(describe(path, f"cannot read TIFF header ({_first_line(exc)})")) from exc


def _token(path: Path, *extra: Any) -> tuple[Any, ...]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, *extra)


def _open_file(
    path: Path, channel: int | None, timepoint: int | None, series: int | None
) -> tuple[da.Array, PhysicalSizes, str]:
    with _damage_check(path), _open_tiff(path) as tif:
        try:
            chosen = _choose_series(path, tif, series)
            selected = tif.series[chosen]
            axes, shape = selected.axes, tuple(selected.shape)
            plane_of_z = _planes_for_z(path, axes, shape, channel, timepoint)
            yx = (shape[-2], shape[-1])
            dtype = np.dtype(selected.dtype)
            if dtype.kind == "c":
                raise StackError(describe(path, "complex-valued images are not supported"))
            n_planes = math.prod(shape[:-2])
            source = _plane_source(path, tif, chosen, n_planes, yx)
            sizes = read_physical_sizes(tif)
        except StackError:
            raise
        except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError) as exc:
            problem = f"cannot read TIFF structure ({_first_line(exc)})"
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
        raise StackError(describe(path, f"is a single 2-D image {shape}, not a z-stack"))
    z_axis = _find_z_axis(path, axes, lead_axes)
    index: list[Any] = []
    for ax, size in zip(lead_axes, lead_shape):
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
                path, f"has {size} entries along {name} (axes {axes}); choose one with {name}="
            )
        )
    if not 0 <= value < size:
        raise StackError(describe(path, f"{name} {value} out of range (0..{size - 1})"))
    return int(value)


def _plane_source(
    path: Path, tif: tifffile.TiffFile, series_index: int, n_planes: int, yx: tuple[int, int]
) -> MemmapSource | TiffPageSource:
    """Memory-map contiguous data, else decode page by page; check for truncation."""
    selected = tif.series[series_index]
    file_size = path.stat().st_size
    dtype = np.dtype(selected.dtype).newbyteorder(tif.byteorder)
    offset = selected.dataoffset
    if offset is not None:
        needed = offset + n_planes * yx[0] * yx[1] * dtype.itemsize
        if needed > file_size:
            raise StackError(
                describe(
                    path,
                    f"file is truncated: pixel data end at byte {needed}, "
                    f"the file has {file_size} bytes",
                )
            )
        return MemmapSource(path, offset, dtype, (n_planes, yx[0], yx[1]))
    pages = selected.pages
    if len(pages) < n_planes:
        raise StackError(describe(path, f"has {len(pages)} of {n_planes} planes; file truncated?"))
    for number, page in enumerate(pages):
        if page is None:
            raise StackError(describe(path, f"plane {number} is missing; file truncated?"))
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
        if ends and max(ends) > file_size:
            raise StackError(
                describe(path, f"file is truncated: plane {number} ends past the end of the file")
            )
    return TiffPageSource(path, series_index)


def _open_folder(folder: Path) -> tuple[da.Array, PhysicalSizes, str]:
    files = tiff_files_in(folder)
    if not files:
        raise StackError(describe(folder, "folder contains no .tif/.tiff slices"))
    shape = dtype = None
    sizes = PhysicalSizes()
    for number, file in enumerate(files):
        with _damage_check(file), _open_tiff(file) as tif:
            if not tif.series:
                raise StackError(describe(file, "contains no images"))
            first = tif.series[0]
            this_shape, this_dtype = tuple(first.shape), np.dtype(first.dtype)
            if "S" in first.axes:
                raise StackError(describe(file, "is an RGB image; save one grey channel instead"))
            if len(this_shape) != 2:
                raise StackError(
                    describe(file, f"expected a 2-D slice in a folder of slices, got {this_shape}")
                )
            _plane_source(file, tif, 0, 1, this_shape)  # truncation check, header only
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
