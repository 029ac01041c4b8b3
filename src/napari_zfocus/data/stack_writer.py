"""Write a z-stack as an ImageJ hyperstack, atomically, with its physical sizes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
import tifffile

from napari_zfocus._atomic import atomic_path
from napari_zfocus.errors import StackError, describe

from .metadata import checked_size

if TYPE_CHECKING:
    from .stack import ZStack

__all__ = ["write_stack"]


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
    from .stack import ZStack  # here: stack.py imports this module

    path = Path(path)
    if isinstance(data, ZStack):
        data = data.data
    z_step = checked_size(path, "z_step_um", z_step_um)
    pixel = checked_size(path, "pixel_size_um", pixel_size_um)
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
