"""The focus log of an acquisition: one CSV row per refocus, written atomically."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from pathlib import Path

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


__all__ = ["HEADER_START", "write_focus_log"]
