"""The stacks of an annotation session: one entry per z-stack, found in a dataset folder.

* :class:`StackEntry` / :class:`StackState` -- what the session knows about one stack;
* :func:`discover_stacks` -- the z-stacks under a folder (files and folders of slices);
* :func:`folder_entries` -- the entries of a dataset folder: its CSV rows plus new stacks;
* :func:`write_stacks` -- in-memory stacks (napari layers' data) written as TIFF files, so
  a dataset made from open layers is self-contained in the interchange format.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_zfocus.data.annotations import ANNOTATIONS_FILE, read_dataset
from napari_zfocus.data.stack import natural_key, tiff_files_in, write_stack
from napari_zfocus.errors import ZFocusError


class StackState(str, Enum):
    """Where one stack stands in the session."""

    UNMARKED = "unmarked"
    SUGGESTED = "suggested"
    MARKED = "marked"


@dataclass
class StackEntry:
    """One z-stack of the session.

    Attributes
    ----------
    name
        Path relative to the dataset folder, POSIX separators (the CSV ``stack`` column).
    z_step_um, pixel_size_um
        Physical sizes; ``None`` until known (CSV row, file metadata or the user).
    focus_index
        Marked in-focus slice (0-based), ``None`` while unmarked.
    suggested_index, suggestion_source
        Suggestion waiting for confirmation (``"classic"`` or ``"model"``), in memory only.
    suggestion_note
        What the suggester said about it when unsure (confidence, runner-up), or "".
    extra
        Other CSV columns of this stack's row, written back unchanged.
    n_slices
        Number of slices, once the stack has been opened.
    """

    name: str
    z_step_um: float | None = None
    pixel_size_um: float | None = None
    focus_index: int | None = None
    suggested_index: int | None = None
    suggestion_source: str | None = None
    suggestion_note: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    n_slices: int | None = None

    @property
    def state(self) -> StackState:
        """``marked`` wins over ``suggested``: a confirmed stack keeps its mark."""
        if self.focus_index is not None:
            return StackState.MARKED
        if self.suggested_index is not None:
            return StackState.SUGGESTED
        return StackState.UNMARKED


def _is_single_plane(path: Path) -> bool:
    """True for a 2-D TIFF (one slice of a folder-of-slices stack); reads the header only."""
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.series) > 0 and len(tif.series[0].shape) == 2
    except Exception:  # noqa: BLE001 - an unreadable file is reported when it is opened
        return False


def discover_stacks(folder: Path) -> list[str]:
    """Stacks under ``folder`` as relative POSIX names, in natural order.

    A multi-page ``.tif``/``.tiff`` file is one stack. A sub-folder whose first TIFF is a
    single 2-D plane is a folder-of-slices stack (the folder is the stack; only that one
    header is read). 2-D files directly in ``folder`` are not stacks and are skipped.
    Hidden files and folders are skipped: atomic writes use dot-named temporary files.
    """
    found: list[str] = []

    def walk(directory: Path) -> None:
        files = tiff_files_in(directory)
        if directory != folder and files and _is_single_plane(files[0]):
            found.append(directory.relative_to(folder).as_posix())
            return
        for file in files:
            found.append(file.relative_to(folder).as_posix())
        for sub in sorted(directory.iterdir()):
            if sub.is_dir() and not sub.name.startswith("."):
                walk(sub)

    walk(folder)
    # 2-D files elsewhere are single images, not z-stacks: read_stack would refuse them.
    stacks = [n for n in found if (folder / n).is_dir() or not _is_single_plane(folder / n)]
    return sorted(stacks, key=natural_key)


def folder_entries(root: Path) -> tuple[list[StackEntry], list[str] | None]:
    """The entries of a dataset folder and the column order of its CSV (None without one).

    Rows of ``annotations.csv`` come first (a row whose stack file is missing is kept as it
    is, never dropped), then every stack found in the folder without a row; natural order.

    Raises
    ------
    ZFocusError
        The folder does not exist, holds no stacks, or its CSV is invalid.
    """
    if not root.is_dir():
        raise ZFocusError(f"{root}: not a folder")
    entries: list[StackEntry] = []
    known: set[str] = set()
    columns = None
    if (root / ANNOTATIONS_FILE).is_file():
        # Missing stack files must not stop the session: their rows are kept as they are.
        dataset = read_dataset(root, check_stacks=False, min_stacks=0)
        columns = list(dataset.columns)
        for a in dataset.annotations:
            name = Path(a.stack).as_posix()
            entries.append(StackEntry(
                name=name, z_step_um=float(a.z_step_um), pixel_size_um=float(a.pixel_size_um),
                focus_index=int(a.focus_index), extra=dict(a.extra),
            ))
            known.add(name)
    # A folder-of-slices stack named in the CSV: do not list its slices as stacks.
    folder_stacks = tuple(n + "/" for n in known if (root / n).is_dir())
    for name in discover_stacks(root):
        if name not in known and not name.startswith(folder_stacks):
            entries.append(StackEntry(name=name))
    if not entries:
        raise ZFocusError(f"{root}: no z-stacks (.tif/.tiff) and no {ANNOTATIONS_FILE}")
    entries.sort(key=lambda e: natural_key(e.name))
    return entries, columns


def safe_name(name: str) -> str:
    """A file name from a layer name (``"my stack"`` -> ``"my_stack"``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "stack"


@dataclass(frozen=True)
class StackToWrite:
    """An in-memory stack to save as TIFF (plain data for a worker, never a layer)."""

    path: Path
    data: Any
    z_step_um: float
    pixel_size_um: float


def write_stacks(jobs: Sequence[StackToWrite]) -> Generator[Path, None, list[Path]]:
    """Write in-memory stacks as TIFF (generator: one yield per stack, for progress).

    Returns (as the generator's value) the written paths, in order.
    """
    paths = []
    for job in jobs:
        write_stack(job.path, np.asarray(job.data), z_step_um=job.z_step_um,
                    pixel_size_um=job.pixel_size_um)
        paths.append(job.path)
        yield job.path
    return paths
