"""The state of an in-focus annotation session, without Qt.

An :class:`AnnotationState` is the model behind the annotation widget: a list of
z-stacks inside one dataset folder, the in-focus slice marked for each, the suggestion
waiting to be confirmed, the current stack, and an undo history. Every change to a mark
(mark, confirm, undo, z-step or pixel-size edit of a marked stack) is written at once,
atomically, to ``<folder>/annotations.csv`` with :func:`~napari_zfocus.data.write_annotations`,
so a crash or kill loses at most the mark in progress.

What is written where
---------------------
* ``annotations.csv`` holds one row per **marked** stack (the interchange format:
  ``stack,focus_index,z_step_um,pixel_size_um`` plus extra columns, kept on round trip).
  The session adds one extra column, ``mark_source``: ``manual`` for a slice marked by
  hand, ``suggestion:classic`` / ``suggestion:model`` for a confirmed suggestion.
* Suggestions that are not confirmed live **in memory only** (state ``suggested``); they
  are never written as marks, so the CSV only ever holds human decisions. They are
  recomputed in a second or so when a stack is opened again.
* Stacks found in the folder without a CSV row are ``unmarked``; rows whose file is
  missing are kept untouched (never dropped from the CSV).

Every change goes through a method and is announced by a psygnal signal, so a view (the
dock) or a script can follow it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from psygnal import Signal

from napari_zfocus.annotation.stacks import StackEntry, StackState, folder_entries
from napari_zfocus.data.annotations import (
    ANNOTATIONS_FILE,
    Annotation,
    dataset_stack_path,
    write_annotations,
)
from napari_zfocus.errors import ZFocusError

__all__ = ["MARK_SOURCE_COLUMN", "AnnotationState", "StackEntry", "StackState"]

#: Extra CSV column recording how a mark was made.
MARK_SOURCE_COLUMN = "mark_source"


@dataclass(frozen=True)
class _Snapshot:
    """What an undo step restores: one entry's mark-related fields before a change."""

    position: int
    focus_index: int | None
    z_step_um: float | None
    pixel_size_um: float | None
    extra: tuple[tuple[str, str], ...]


class AnnotationState:
    """Marks, suggestions and navigation over the stacks of one dataset folder.

    Parameters
    ----------
    root
        Dataset folder; ``annotations.csv`` is written here.
    entries
        The stacks, in display order.
    default_z_step_um, default_pixel_size_um
        Used for a stack whose metadata gives no value, until the user edits it.

    Signals
    -------
    entry_changed(int)
        The mark, suggestion, sizes or slice count of the stack at this position changed.
    selected(int)
        The current stack is now the one at this position.
    saved(Path)
        ``annotations.csv`` was written.
    """

    entry_changed = Signal(int)
    selected = Signal(int)
    saved = Signal(Path)

    def __init__(
        self,
        root: str | Path,
        entries: Sequence[StackEntry],
        *,
        default_z_step_um: float = 1.0,
        default_pixel_size_um: float = 0.24,
    ) -> None:
        self.root = Path(root)
        self.entries: list[StackEntry] = list(entries)
        names = [e.name for e in self.entries]
        if len(set(names)) != len(names):
            raise ZFocusError(f"{self.root}: the same stack is listed twice")
        self.default_z_step_um = float(default_z_step_um)
        self.default_pixel_size_um = float(default_pixel_size_um)
        self.current: int | None = 0 if self.entries else None
        self._undo: list[_Snapshot] = []
        # CSV rows of stacks not shown in this session (see from_paths): written back as they are.
        self._hidden: list[StackEntry] = []
        # Column order of the CSV read at opening, kept when writing back (None: default order).
        self.columns: list[str] | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open_folder(cls, folder: str | Path, **kwargs: float) -> AnnotationState:
        """Open a dataset folder: its ``annotations.csv`` rows plus every stack file in it.

        A folder without ``annotations.csv`` is a valid start: every stack is unmarked.

        Raises
        ------
        ZFocusError
            The folder does not exist, holds no stacks, or its CSV is invalid.
        """
        root = Path(folder)
        entries, columns = folder_entries(root)
        session = cls(root, entries, **kwargs)
        session.columns = columns
        return session

    @classmethod
    def from_paths(
        cls, paths: Iterable[str | Path], root: str | Path | None = None, **kwargs: float
    ) -> AnnotationState:
        """A session over chosen stack files; the CSV goes to ``root``.

        ``root`` defaults to the deepest folder holding all ``paths``. Rows already in
        ``root/annotations.csv`` are restored for the chosen stacks and kept for the others.
        """
        resolved = [Path(p).resolve() for p in paths]
        if not resolved:
            raise ZFocusError("no stacks chosen")
        if root is None:
            root = Path(os.path.commonpath([p.parent for p in resolved]))
        root = Path(root).resolve()
        names = []
        for p in resolved:
            try:
                names.append(p.relative_to(root).as_posix())
            except ValueError:
                raise ZFocusError(f"{p}: not inside the dataset folder {root}") from None
        session = cls(root, [StackEntry(name=n) for n in names], **kwargs)
        if (root / ANNOTATIONS_FILE).is_file():
            restored = cls.open_folder(root, **kwargs)
            by_name = {e.name: e for e in restored.entries}
            chosen = set(names)
            session.entries = [by_name.get(n, StackEntry(name=n)) for n in names]
            # Rows of stacks not chosen now stay in the CSV: keep them, hidden at the end.
            session.columns = restored.columns
            session._hidden = [
                e for e in restored.entries if e.name not in chosen and e.focus_index is not None
            ]
        return session

    # ---------------------------------------------------------------- queries
    def stack_path(self, position: int | None = None) -> Path:
        """Absolute path of a stack (the current one by default); a name that resolves
        outside the folder (``..``, a symlink out) raises :class:`DatasetError`."""
        return dataset_stack_path(self.root, self.entry(position).name)

    def entry(self, position: int | None = None) -> StackEntry:
        """The entry at ``position`` (the current one by default)."""
        if position is None:
            position = self.current
        if position is None or not 0 <= position < len(self.entries):
            raise ZFocusError(f"{self.root}: no stack at position {position}")
        return self.entries[position]

    @property
    def n_marked(self) -> int:
        return sum(e.focus_index is not None for e in self.entries)

    def counts_text(self) -> str:
        """E.g. ``"37 / 100 marked"``."""
        return f"{self.n_marked} / {len(self.entries)} marked"

    def next_unmarked(self, start: int | None = None) -> int | None:
        """Position of the next unmarked stack after ``start`` (wrapping); ``None`` if all done."""
        n = len(self.entries)
        if n == 0:
            return None
        start = self.current if start is None else start
        first = 0 if start is None else start + 1
        for k in range(n):
            pos = (first + k) % n
            if self.entries[pos].focus_index is None:
                return pos
        return None

    def z_step(self, position: int | None = None) -> float:
        """The stack's z-step, or the session default while unknown."""
        value = self.entry(position).z_step_um
        return self.default_z_step_um if value is None else value

    def pixel_size(self, position: int | None = None) -> float:
        """The stack's pixel size, or the session default while unknown."""
        value = self.entry(position).pixel_size_um
        return self.default_pixel_size_um if value is None else value

    def distance_um(self, slice_index: int, position: int | None = None) -> float | None:
        """Signed distance of ``slice_index`` from the marked slice in um (``None`` if unmarked).

        Same convention as the dataset: ``z = (i - focus_index) * z_step``.
        """
        e = self.entry(position)
        if e.focus_index is None:
            return None
        return (slice_index - e.focus_index) * self.z_step(position)

    # ---------------------------------------------------------------- changes
    def select(self, position: int) -> StackEntry:
        """Make ``position`` the current stack."""
        entry = self.entry(position)
        self.current = position
        self.selected.emit(position)
        return entry

    def opened(self, n_slices: int, z_step_um: float | None, pixel_size_um: float | None) -> None:
        """Record what opening the current stack told us; metadata fills unknown sizes only."""
        e = self.entry()
        e.n_slices = int(n_slices)
        if e.z_step_um is None and z_step_um:
            e.z_step_um = float(z_step_um)
        if e.pixel_size_um is None and pixel_size_um:
            e.pixel_size_um = float(pixel_size_um)
        self.entry_changed.emit(self.current)

    def set_suggestion(
        self, index: int | None, source: str, position: int | None = None, note: str = ""
    ) -> None:
        """Store a suggestion (not written to disk) for a stack; ``note``: why to check it."""
        e = self.entry(position)
        e.suggested_index = None if index is None else int(index)
        e.suggestion_source = None if index is None else source
        e.suggestion_note = "" if index is None else note
        self.entry_changed.emit(self.current if position is None else position)

    def drop_suggestions(self, source: str) -> None:
        """Forget every suggestion made by ``source`` (a better one is coming: a model)."""
        for position, e in enumerate(self.entries):
            if e.suggestion_source == source:
                e.suggested_index = e.suggestion_source = None
                self.entry_changed.emit(position)

    def needs_suggestion(self, position: int, wanted: str) -> bool:
        """True for an unmarked stack without a suggestion from ``wanted`` (``"model"``...)."""
        e = self.entry(position)
        return e.focus_index is None and e.suggestion_source != wanted

    def next_to_suggest(self, wanted: str) -> int | None:
        """The stack to suggest for next: the current one, else the next unmarked; or None."""
        if self.current is None:
            return None
        if self.needs_suggestion(self.current, wanted):
            return self.current
        position = self.next_unmarked()
        if position is not None and self.needs_suggestion(position, wanted):
            return position
        return None

    def accept_suggestion(
        self, name: str, index: int, source: str, note: str = ""
    ) -> int | None:
        """Store a worker's suggestion for stack ``name``; its position (None: not listed)."""
        for position, e in enumerate(self.entries):
            if e.name == name:
                self.set_suggestion(index, source, position, note)
                return position
        return None

    def mark(self, slice_index: int, source: str = "manual") -> Path:
        """Mark ``slice_index`` of the current stack as in focus and save. Undoable."""
        e = self.entry()
        self._check_slice(e, slice_index)
        self._remember()
        e.focus_index = int(slice_index)
        e.z_step_um = self.z_step()
        e.pixel_size_um = self.pixel_size()
        e.extra[MARK_SOURCE_COLUMN] = source
        return self._changed(self.current)

    def confirm_suggestion(self) -> Path:
        """Mark the current stack's suggested slice. Raises if there is none."""
        e = self.entry()
        if e.suggested_index is None:
            raise ZFocusError(f"{e.name}: no suggestion to confirm yet")
        return self.mark(e.suggested_index, source=f"suggestion:{e.suggestion_source}")

    def unmark(self) -> Path:
        """Remove the current stack's mark and save. Undoable."""
        e = self.entry()
        self._remember()
        e.focus_index = None
        e.extra.pop(MARK_SOURCE_COLUMN, None)
        return self._changed(self.current)

    def set_sizes(self, z_step_um: float | None = None, pixel_size_um: float | None = None) -> None:
        """Edit the current stack's z-step / pixel size; saved at once if it is marked."""
        for name, value in (("z-step", z_step_um), ("pixel size", pixel_size_um)):
            if value is not None and not value > 0:
                raise ZFocusError(f"{self.entry().name}: {name} must be positive, got {value}")
        e = self.entry()
        changed = (z_step_um is not None and z_step_um != e.z_step_um) or (
            pixel_size_um is not None and pixel_size_um != e.pixel_size_um
        )
        if not changed:
            return
        if e.focus_index is not None:
            self._remember()
        if z_step_um is not None:
            e.z_step_um = float(z_step_um)
        if pixel_size_um is not None:
            e.pixel_size_um = float(pixel_size_um)
        if e.focus_index is not None:
            self.save()
        self.entry_changed.emit(self.current)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo(self) -> int | None:
        """Revert the last saved change; returns the position it touched (``None`` if nothing).

        The touched stack becomes the current one, so the user sees what was undone.
        """
        if not self._undo:
            return None
        snap = self._undo.pop()
        e = self.entries[snap.position]
        e.focus_index = snap.focus_index
        e.z_step_um = snap.z_step_um
        e.pixel_size_um = snap.pixel_size_um
        e.extra = dict(snap.extra)
        self.current = snap.position
        self._changed(snap.position)
        self.selected.emit(snap.position)
        return snap.position

    def annotations(self) -> list[Annotation]:
        """The marked stacks as :class:`~napari_zfocus.data.Annotation` rows, display order."""
        rows = []
        for e in [*self.entries, *self._hidden]:
            if e.focus_index is None:
                continue
            rows.append(
                Annotation(
                    stack=e.name,
                    focus_index=int(e.focus_index),
                    z_step_um=_or(e.z_step_um, self.default_z_step_um),
                    pixel_size_um=_or(e.pixel_size_um, self.default_pixel_size_um),
                    extra=dict(e.extra),
                )
            )
        return rows

    def save(self) -> Path:
        """Write ``annotations.csv`` atomically (every marked stack); returns its path."""
        path = Path(write_annotations(self.root, self.annotations(), columns=self.columns))
        self.saved.emit(path)
        return path

    def _changed(self, position: int | None) -> Path:
        """Save a change to a mark, then announce it (the file first: a view reads it)."""
        path = self.save()
        self.entry_changed.emit(position)
        return path

    # --------------------------------------------------------------- helpers
    def _remember(self) -> None:
        assert self.current is not None
        e = self.entries[self.current]
        extra = tuple(e.extra.items())
        snapshot = _Snapshot(self.current, e.focus_index, e.z_step_um, e.pixel_size_um, extra)
        self._undo.append(snapshot)

    @staticmethod
    def _check_slice(e: StackEntry, slice_index: int) -> None:
        if slice_index < 0 or (e.n_slices is not None and slice_index >= e.n_slices):
            raise ZFocusError(
                f"{e.name}: slice {slice_index} is outside the stack (0..{(e.n_slices or 1) - 1})"
            )


def _or(value: float | None, default: float) -> float:
    return float(default if value is None else value)
