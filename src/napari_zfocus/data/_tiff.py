"""TIFF structure checks shared by the stack readers: damage, truncation, pixel types.

tifffile reads a cut-off or damaged file as far as it can and only logs the damage (or
raises one of many exception types from deep inside its parser). These helpers turn every
such case into a :class:`~napari_zfocus.errors.StackError` naming the file, so that a
truncated 31-slice stack is refused, never read as a 2-D image or as fewer slices.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_zfocus.errors import StackError, describe

from ._lazy import MemmapSource, TiffPageSource


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type), for one-line errors."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


#: tifffile log messages that mean the file structure is cut off or broken.
_DAMAGE_HINTS = (
    "invalid page offset",
    "invalid value offset",
    "corrupted",
    "failed to reshape",
    "truncated",
)


#: What tifffile raises on a damaged header or IFD chain (struct.error: a cut-off IFD).
STRUCTURE_ERRORS = (
    tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError, struct.error,
    EOFError, MemoryError,
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
def damage_check(path: Path) -> Iterator[None]:
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
        detail = re.sub(r"^(<[^>]*>\s*)+", "", first_line(Exception(hits[0])))
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


def open_tiff(path: Path) -> tifffile.TiffFile:
    """Open a TIFF file's header; refuse anything but a regular file before opening it
    (reading a FIFO blocks forever, a device never ends)."""
    try:
        regular = path.is_file()
    except (OSError, ValueError):  # a symlink loop, a NUL in the name
        regular = False
    if not regular:
        what = "no such file" if not os.path.lexists(path) else "not a regular file"
        raise StackError(describe(path, f"{what}; expected a TIFF file or a folder of slices"))
    try:
        return tifffile.TiffFile(path)
    except tifffile.TiffFileError as exc:
        raise StackError(describe(path, f"not a readable TIFF file ({first_line(exc)})")) from exc
    except (OSError, ValueError, struct.error) as exc:
        raise StackError(describe(path, f"cannot read TIFF header ({first_line(exc)})")) from exc


def series_of(path: Path, tif: tifffile.TiffFile) -> list[Any]:
    """``tif.series``, parsed here so a damaged IFD chain becomes a StackError."""
    try:
        return list(tif.series)
    except STRUCTURE_ERRORS as exc:
        problem = f"cannot read TIFF structure ({first_line(exc)})"
        raise StackError(describe(path, problem)) from exc


def pixel_dtype(path: Path, dtype: Any) -> np.dtype:
    """The file's pixel type, refusing what is no bright-field intensity."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise StackError(describe(path, "complex-valued images are not supported"))
    if dtype.kind == "b":
        raise StackError(
            describe(path, "holds 1-bit (bool) pixels, a mask rather than a bright-field image")
        )
    if dtype.kind not in "uif":
        raise StackError(describe(path, f"holds {dtype} pixels, not grey levels"))
    return dtype


def plane_source(
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
        # strict=False: a corrupt page may list fewer byte counts than offsets.
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
        if ends and max(ends) > file_size:
            raise StackError(
                describe(path, f"file is truncated: plane {number} ends past the end of the file")
            )
    return TiffPageSource(path, series_index)
