"""Live training curves for the training dock: loss and validation error on one canvas.

Built on the shared :class:`~napari_zfocus._qt._canvas.PlotCanvas` (napari dark style).
Lines are created once and only their data change; :meth:`LossPlot.show_history` redraws at
most every ``min_interval_s`` (a :class:`~napari_zfocus.training.run_state.Throttle`), so
a fast training loop cannot flood the GUI thread with redraws.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator
from qtpy.QtWidgets import QWidget

from napari_zfocus._qt._canvas import ACCENT, FOREGROUND, WARN, PlotCanvas
from napari_zfocus.training.run_state import History, Throttle


class LossPlot(PlotCanvas):
    """Training loss (left axis) and validation median |error| in um (right axis).

    Parameters
    ----------
    min_interval_s
        Shortest time between two redraws (0.25 s: at most 4 redraws per second).
    parent
        Qt parent.
    """

    def __init__(self, min_interval_s: float = 0.25, parent: QWidget | None = None) -> None:
        super().__init__(height_px=190, parent=parent)
        self.throttle = Throttle(min_interval_s)
        self.max_points = 4000
        self.ax = self.add_axes()
        self.ax.set_xlabel("step", fontsize=8)
        self.ax.set_ylabel("training loss", fontsize=8, color=ACCENT)
        self.ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        self.val_ax = self.ax.twinx()
        self.val_ax.tick_params(colors=FOREGROUND, labelsize=8)
        self.val_ax.set_ylabel("validation median |error| (um)", fontsize=8, color=WARN)
        (self.loss_line,) = self.ax.plot([], [], "-", color=ACCENT, linewidth=0.8, alpha=0.35)
        (self.smooth_line,) = self.ax.plot([], [], "-", color=ACCENT, linewidth=1.6)
        (self.val_line,) = self.val_ax.plot([], [], "o-", color=WARN, markersize=3, linewidth=1.2)
        # Re-laid out on every draw, so labels stay inside the canvas when the dock resizes.
        self.figure.set_layout_engine("constrained")

    def show_history(self, history: History, force: bool = False) -> bool:
        """Show ``history``; returns True if a redraw happened (throttled unless ``force``)."""
        if not force and not self.throttle.ready():
            return False
        # A 100k-step run: draw every k-th point (a few thousand are plenty for the eye).
        stride = max(1, len(history.steps) // self.max_points)
        steps_drawn = np.asarray(history.steps[::stride], dtype=float)
        losses_drawn = np.asarray(history.losses[::stride], dtype=float)
        self.loss_line.set_data(steps_drawn, losses_drawn)
        # Mini-batch losses are noisy: a moving average shows the trend.
        self.smooth_line.set_data(steps_drawn, _moving_average(losses_drawn))
        self.val_line.set_data(history.val_steps, history.val_errors)
        steps = history.steps + history.val_steps
        if steps:
            last = max(steps)
            first = min(steps)
            pad = max(1.0, 0.03 * (last - first))  # keep the last marker inside the axes
            self.ax.set_xlim(first, last + pad)
        if history.losses:
            lo, hi = min(history.losses), max(history.losses)
            pad = max(0.05 * (hi - lo), 1e-3)
            self.ax.set_ylim(max(0.0, lo - pad), hi + pad)
        if history.val_errors:
            self.val_ax.set_ylim(0, max(history.val_errors) * 1.15 + 1e-6)
        self.draw()
        return True

    def clear(self) -> None:
        """Empty the curves (a fresh run)."""
        self.show_history(History(), force=True)


def _moving_average(values: np.ndarray, window: int | None = None) -> np.ndarray:
    """Trailing mean over ``window`` points (about 5% of the curve, at least 1)."""
    n = len(values)
    if n == 0:
        return values
    window = window or max(1, n // 20)
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    starts = np.maximum(np.arange(1, n + 1) - window, 0)
    return (cumulative[1:] - cumulative[starts]) / (np.arange(1, n + 1) - starts)
