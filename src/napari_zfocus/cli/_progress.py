"""Progress lines on stderr for the long simulated runs (``live`` and ``acquire``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

ProgressLine = Callable[[int, int, Any], str]


def progress_printer(line: ProgressLine, every_s: float = 5.0) -> Callable[[int, int, Any], None]:
    """A progress callback ``(done, total, item)`` that prints ``line(done, total, item)`` on
    stderr at most once per ``every_s`` wall seconds, and always for the last item."""
    last = [time.monotonic()]

    def progress(done: int, total: int, item: Any) -> None:
        now = time.monotonic()
        if now - last[0] < every_s and done < total:
            return
        last[0] = now
        print(line(done, total, item), file=sys.stderr, flush=True)

    return progress


__all__ = ["progress_printer"]
