"""Lazy (Z, Y, X) arrays over TIFF pages, so that showing one slice reads one slice.

zarr is not a dependency, so ``tifffile.imread(aszarr=True)`` is not available. Instead a
small array-like object reads the requested planes on demand and dask wraps it with one
chunk per slice:

* contiguous uncompressed data (most acquisitions, ImageJ files over 4 GB whose planes
  have no IFD of their own) is memory-mapped;
* anything else (compressed, tiled, scattered pages) is decoded page by page through one
  ``TiffFile`` handle, opened on the first read;
* a folder of 2-D files reads one file per slice.

Sources open their files lazily and drop handles when pickled, so a dask graph can be
shipped to worker processes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import dask.array as da
import numpy as np
import tifffile
from dask.base import tokenize


class PlaneSource(Protocol):
    """Reads whole 2-D planes by their index in the file's flat plane order."""

    def read(self, planes: Sequence[int]) -> np.ndarray:
        """Return the planes as an array of shape (len(planes), Y, X)."""
        ...


class MemmapSource:
    """Planes stored back to back, uncompressed, from ``offset`` on."""

    def __init__(self, path: Path, offset: int, dtype: np.dtype, shape: tuple[int, int, int]):
        self.path = Path(path)
        self.offset = int(offset)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(n) for n in shape)  # (n_planes, Y, X)
        self._map: np.memmap | None = None

    def read(self, planes: Sequence[int]) -> np.ndarray:
        if self._map is None:
            self._map = np.memmap(
                self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape
            )
        # Fancy indexing copies just these planes out of the mapping.
        return np.asarray(self._map[np.asarray(planes, dtype=np.intp)]).astype(
            self.dtype.newbyteorder("="), copy=False
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_map"] = None
        return state


class TiffPageSource:
    """Planes decoded one page at a time from series ``series`` of a TIFF file."""

    def __init__(self, path: Path, series: int):
        self.path = Path(path)
        self.series = int(series)
        self._tif: tifffile.TiffFile | None = None
        self._lock = threading.Lock()

    def read(self, planes: Sequence[int]) -> np.ndarray:
        with self._lock:  # one file handle: decode under a lock
            if self._tif is None:
                self._tif = tifffile.TiffFile(self.path)
            pages = self._tif.series[self.series].pages
            out = []
            for index in planes:
                page = pages[index]
                if page is None:  # a missing IFD: tifffile leaves a hole in the series
                    raise OSError(f"{self.path}: plane {index} is missing from the file")
                out.append(page.asarray())
        return np.stack(out)

    def close(self) -> None:
        with self._lock:
            if self._tif is not None:
                self._tif.close()
                self._tif = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tif"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __del__(self) -> None:
        tif = self.__dict__.get("_tif")
        if tif is not None:
            tif.close()


class FileListSource:
    """One 2-D TIFF file per plane (a folder of slices)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = [Path(p) for p in paths]

    def read(self, planes: Sequence[int]) -> np.ndarray:
        return np.stack([tifffile.imread(self.paths[i]) for i in planes])


class LazyPlanes:
    """An array-like of shape (Z, Y, X) whose slice ``z`` is plane ``plane_of_z[z]``.

    Dask calls ``__getitem__`` with one tuple of slices per chunk; only the planes inside
    the requested z-range are read.
    """

    def __init__(
        self,
        source: PlaneSource,
        plane_of_z: Sequence[int],
        yx: tuple[int, int],
        dtype: np.dtype,
    ):
        self.source = source
        self.plane_of_z = np.asarray(plane_of_z, dtype=np.intp)
        self.shape = (len(self.plane_of_z), int(yx[0]), int(yx[1]))
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        zkey, rest = key[0], key[1:]
        if isinstance(zkey, (int, np.integer)):
            planes = self.source.read([int(self.plane_of_z[zkey])])
            return planes[0][rest]
        planes = self.source.read(self.plane_of_z[zkey].tolist())
        return planes[(slice(None),) + rest]


def as_dask(planes: LazyPlanes, token: Any) -> da.Array:
    """Wrap ``planes`` in a dask array with one chunk per z-slice.

    ``token`` (path, size, modification time, selection) names the graph so that two
    opens of the same file share cached chunks and dask never hashes the source object.
    """
    return da.from_array(
        planes,
        chunks=(1, planes.shape[1], planes.shape[2]),
        name=f"zstack-{tokenize(token)}",
        meta=np.empty((0, 0, 0), dtype=planes.dtype),
        asarray=True,
        fancy=False,
    )


def file_token(path: Path, *extra: Any) -> tuple[Any, ...]:
    """Dask name token of a file: it changes when the file does (size, mtime)."""
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, *extra)
