"""Pace a live display so that it never starves the autofocus loop.

The live loop (grab, estimate, move) and the GUI share the CPU and, in one Python process,
the GIL. Showing a frame in napari costs the GUI thread a texture upload, a repaint of the
canvas and of the window around it; on a laptop with a GPU that is a few milliseconds, on
a 2-core machine with software OpenGL it is 50 ms or more. If the GUI showed every frame
the loop produced, it would hold the GIL most of the time and the loop would slow to the
display's pace. :class:`DisplayPacer` instead measures what the GUI thread really spends
per shown frame (its CPU time between two shows, so paints, plots and labels all count)
and spaces the shows so that the GUI thread stays within ``budget`` of one core. Frames
that arrive in between are dropped (the latest-only slot already does that), never queued.

The result: a fast machine shows up to ``max_rate_hz``; a slow one shows fewer frames per
second, and the autofocus loop keeps its rate on both.
"""

from __future__ import annotations

import math

__all__ = ["DisplayPacer"]


class DisplayPacer:
    """Decides when the GUI thread may show the next live frame.

    Parameters
    ----------
    budget
        Fraction of one core the GUI thread may spend on the live display (0-1].
    max_rate_hz
        Never show faster than this (a screen refreshes at ~60 Hz).
    min_rate_hz
        Never show slower than this, whatever it costs: the user must see the sample.
    smoothing
        Weight of the newest cost measurement in the running estimate (0-1].

    Notes
    -----
    Qt-free and clock-agnostic: the caller passes wall-clock and thread-CPU times (on the
    GUI thread, ``time.perf_counter()`` and ``time.thread_time()``), so tests drive it
    with made-up numbers.
    """

    def __init__(
        self,
        budget: float = 0.2,
        max_rate_hz: float = 60.0,
        min_rate_hz: float = 2.0,
        smoothing: float = 0.3,
    ) -> None:
        if not 0.0 < budget <= 1.0:
            raise ValueError(f"display budget must be in (0, 1], got {budget}")
        if not 0.0 < min_rate_hz <= max_rate_hz:
            raise ValueError(
                f"need 0 < min_rate_hz <= max_rate_hz, got {min_rate_hz}, {max_rate_hz}"
            )
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        self.budget = float(budget)
        self.min_interval_s = 1.0 / float(max_rate_hz)
        self.max_interval_s = 1.0 / float(min_rate_hz)
        self.smoothing = float(smoothing)
        self.reset()

    def reset(self) -> None:
        """Forget all measurements (live view restarted)."""
        self.cost_s = 0.0  # smoothed GUI-thread CPU seconds per shown frame
        self.interval_s = self.min_interval_s
        self._last_wall = -math.inf
        self._last_cpu: float | None = None

    @property
    def rate_hz(self) -> float:
        """The display rate the pacer currently allows."""
        return 1.0 / self.interval_s

    def due(self, wall_s: float) -> bool:
        """Whether a frame may be shown at wall-clock time ``wall_s``."""
        return wall_s - self._last_wall >= self.interval_s

    def shown(self, wall_s: float, thread_cpu_s: float) -> None:
        """Record that a frame was shown at ``wall_s``; ``thread_cpu_s`` is the GUI
        thread's CPU clock then. The cost of a shown frame is the GUI thread's CPU time
        since the previous show (the repaint of the previous frame happens in between)."""
        if self._last_cpu is not None:
            cost = max(0.0, thread_cpu_s - self._last_cpu)
            first = self.cost_s == 0.0
            self.cost_s = cost if first else self.cost_s + self.smoothing * (cost - self.cost_s)
            wanted = self.cost_s / self.budget
            self.interval_s = min(self.max_interval_s, max(self.min_interval_s, wanted))
        self._last_wall = wall_s
        self._last_cpu = thread_cpu_s
