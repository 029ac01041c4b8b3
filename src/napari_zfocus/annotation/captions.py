"""The words the annotation dock shows for a session, without Qt (testable as text).

Each function reads an
:class:`~napari_zfocus.annotation.annotation_state.AnnotationState` (or one of its
entries) and returns the text of one place in the dock or on the canvas.
"""

from __future__ import annotations

from napari_zfocus.annotation.annotation_state import MARK_SOURCE_COLUMN, AnnotationState
from napari_zfocus.annotation.stacks import StackEntry, StackState

#: Colour and symbol of each stack state in the list.
STATE_LOOK = {
    StackState.MARKED: ("#a0e77d", "\u2713"),  # check mark
    StackState.SUGGESTED: ("#ff9f0a", "?"),
    StackState.UNMARKED: ("#9a9a9a", "\u00b7"),
}


def overlay_text(state: AnnotationState, slice_index: int, position: int | None = None) -> str:
    """One line for the canvas, e.g. ``"marked: slice 14 | this slice: +2.0 um from focus"``."""
    e = state.entry(position)
    if e.focus_index is not None:
        d = state.distance_um(slice_index, position)
        return f"marked: slice {e.focus_index} | this slice: {d:+.1f} um from focus"
    if e.suggested_index is not None:
        d = (slice_index - e.suggested_index) * state.z_step(position)
        return (
            f"suggested ({e.suggestion_source}): slice {e.suggested_index} | "
            f"this slice: {d:+.1f} um from it | press Enter to confirm"
        )
    return f"unmarked | this slice: {slice_index} | press f to mark"


def entry_label(entry: StackEntry) -> tuple[str, str]:
    """``(text, colour)`` of a stack in the list, e.g. ``"✓  a.tif   (slice 7)"``."""
    colour, symbol = STATE_LOOK[entry.state]
    if entry.state is StackState.MARKED:
        detail = f"slice {entry.focus_index}"
    elif entry.state is StackState.SUGGESTED:
        detail = f"suggested {entry.suggested_index}"
    else:
        detail = "unmarked"
    return f"{symbol}  {entry.name}   ({detail})", colour


def stack_title(state: AnnotationState) -> str:
    """The current stack's heading, e.g. ``"a.tif  —  11 slices  (1 of 3)"``."""
    entry = state.entry()
    assert state.current is not None
    return (
        f"{entry.name}  \u2014  {entry.n_slices or '?'} slices  "
        f"({state.current + 1} of {len(state.entries)})"
    )


def suggestion_text(entry: StackEntry, computing: bool = False) -> str:
    """The current stack's mark or suggestion; ``computing``: a worker is on it."""
    if entry.focus_index is not None:
        how = entry.extra.get(MARK_SOURCE_COLUMN, "manual")
        return f"marked: slice {entry.focus_index} ({how})"
    if entry.suggested_index is not None:
        note = f"; {entry.suggestion_note}" if entry.suggestion_note else ""
        return (
            f"suggestion: slice {entry.suggested_index} ({entry.suggestion_source}{note}) "
            "\u2014 Enter to confirm"
        )
    return "suggestion: computing\u2026" if computing else "suggestion: \u2014"


def layer_name(entry: StackEntry) -> str:
    """Name of the annotation layer: the mark shows in the layer list too."""
    if entry.focus_index is not None:
        return f"{entry.name} \u2713 slice {entry.focus_index}"
    if entry.suggested_index is not None:
        return f"{entry.name} ? slice {entry.suggested_index}"
    return f"{entry.name} (unmarked)"
