"""Z-stacks: read any common microscopy TIFF lazily, write ImageJ hyperstacks atomically.

Supported inputs:

* ImageJ hyperstacks (``spacing`` / ``unit`` / resolution metadata);
* OME-TIFF (``PhysicalSizeZ`` / ``PhysicalSizeX``);
* Micro-Manager TIFFs (``z-step_um`` / ``PixelSizeUm`` in their JSON metadata);
* plain multi-page TIFFs;
* a folder of 2-D TIFF slices, in natural order (``slice_2`` before ``slice_10``).

Pixel data stay on disk until a slice is asked for (see :mod:`._lazy`); opening a
multi-GB stack only reads its header. Opening one TIFF file is :mod:`.tiff_series`, a
folder of slices :mod:`.slice_folder`, writing :mod:`.stack_writer`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from napari_zfocus.bounds import MIN_STACK_SLICES
from napari_zfocus.errors import StackError, describe

from ._tiff import damage_check, first_line, open_tiff, series_of
from .metadata import check_metadata_sizes, checked_size
from .slice_folder import TIFF_SUFFIXES, natural_key, open_slice_folder, tiff_files_in
from .stack_writer import write_stack
from .tiff_series import open_tiff_stack, same_shape_series

# Writing and the folder-of-slices helpers live in .stack_writer and .slice_folder;
# they stay importable from here.
__all__ = [
    "TIFF_SUFFIXES",
    "ZStack",
    "natural_key",
    "read_stack",
    "stack_series",
    "tiff_files_in",
    "write_stack",
]


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
        # float64 values beyond float32's range become inf in the cast: no warning here
        # (it would be a second stderr line), the message below says what happened.
        with np.errstate(over="ignore", invalid="ignore"):
            out = array.astype(np.float32, copy=False)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(out).all():
            if np.isfinite(array).all():
                peak = float(np.max(np.abs(array)))
                raise StackError(describe(
                    self._name, f"{what} has values up to {peak:.3g}, which overflow float32 "
                    f"(largest {float(np.finfo(np.float32).max):.3g}); rescale the image"))
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
        or pixel size outside :mod:`napari_zfocus.bounds` (given, or from the metadata
        when not given), pixels that are not square, not a regular file (a FIFO).
    """
    path = Path(path)
    z_override = checked_size(path, "z_step_um", z_step_um)
    px_override = checked_size(path, "pixel_size_um", pixel_size_um)
    if not path.exists():
        raise StackError(describe(path, "no such file or folder"))
    if path.is_dir():
        data, sizes, axes = open_slice_folder(path)
    else:
        data, sizes, axes = open_tiff_stack(path, channel, timepoint, series, allow_2d)
    check_metadata_sizes(path, sizes, z_step_given=z_override is not None,
                         pixel_size_given=px_override is not None)
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
        return same_shape_series(tif)
