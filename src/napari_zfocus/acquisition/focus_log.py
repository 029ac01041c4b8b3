"""The focus log of an acquisition: one CSV row per refocus (written atomically), and its
counts (what the command line's summaries of real and simulated acquisitions share)."""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from napari_zfocus._atomic import atomic_open
from napari_zfocus.acquisition.settings import FOCUS_RECORD_COLUMNS, FocusRecord

#: The first bytes of every focus log: how a later run knows it may replace one.
HEADER_START = ",".join(FOCUS_RECORD_COLUMNS[:3]) + ","


def write_focus_log(path: str | os.PathLike[str], records: Iterable[FocusRecord]) -> Path:
    """Write ``records`` as CSV (temp file + rename); NaN as an empty cell."""
    target = Path(path)
    with atomic_open(target, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FOCUS_RECORD_COLUMNS)
        writer.writeheader()
        for record in records:
            row = record.to_dict()
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v
                             for k, v in row.items()})
    return target


def refocus_counts(records: Sequence[FocusRecord]) -> dict[str, Any]:
    """Refocuses, focus frames (in all and per refocus), the largest focus step and the
    number of refocuses per decision."""
    focus_frames = int(sum(r.focus_frames for r in records))
    return {
        "refocuses": len(records),
        "focus_frames": focus_frames,
        "focus_frames_per_refocus": focus_frames / len(records) if records else None,
        "max_step_um": max((r.max_move_um for r in records), default=0.0),
        "decisions": dict(Counter(r.decision for r in records)),
    }


__all__ = ["HEADER_START", "refocus_counts", "write_focus_log"]
