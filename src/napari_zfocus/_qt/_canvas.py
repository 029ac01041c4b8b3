"""Small matplotlib canvases for the inspection and training docks.

Plots are embedded with ``FigureCanvasQTAgg`` and styled like napari's dark theme. They
never redraw more often than they must: artists are created once and only their data
change, and :meth:`PlotCanvas.request_draw` rate-limits the (expensive) redraw so a fast
stream of updates cannot starve the GUI thread (the live dock, which follows a camera,
uses the cheaper QPainter plots of :mod:`napari_zfocus._qt._live_plots`). The limit adapts
to the machine: a redraw that took ``d`` seconds is not repeated for ``DUTY_FACTOR * d``
seconds, so plots use at most ~1/DUTY_FACTOR of the GUI thread even when drawing is slow
(a loaded CPU).
"""

from __future__ import annotations

import math
import time

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

# napari "dark" theme colours (background, foreground, highlight).
BACKGROUND = "#262930"
FOREGROUND = "#d6d0ce"
GRID = "#414851"
ACCENT = "#5ac8fa"
WARN = "#ff9f0a"
COLOURS = ("#5ac8fa", "#ff9f0a", "#a0e77d", "#ff6482")
#: Throttled redraws wait at least this many times the duration of the previous redraw.
DUTY_FACTOR = 10.0


def style_axes(ax) -> None:
    """Dark background, light text, faint grid."""
    ax.set_facecolor(BACKGROUND)
    ax.tick_params(colors=FOREGROUND, labelsize=8)
    ax.xaxis.label.set_color(FOREGROUND)
    ax.yaxis.label.set_color(FOREGROUND)
    ax.title.set_color(FOREGROUND)
    for spine in ax.spines.values():
        spine.set_color(GRID)
    ax.grid(True, color=GRID, linewidth=0.5, alpha=0.6)


class PlotCanvas(QWidget):
    """A matplotlib figure in a QWidget, with rate-limited redraws.

    Parameters
    ----------
    height_px
        Minimum height of the canvas.
    parent
        Qt parent.
    """

    def __init__(self, height_px: int = 160, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.figure = Figure(figsize=(4, height_px / 100), dpi=100, facecolor=BACKGROUND)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(height_px)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self._last_draw = -math.inf
        self.last_draw_s = 0.0  # duration of the latest redraw
        self.n_draws = 0

    def add_axes(self):
        """One styled axes filling the figure."""
        ax = self.figure.add_subplot(111)
        style_axes(ax)
        return ax

    def draw(self) -> None:
        """Redraw now, synchronously (and remember how long it took)."""
        start = time.perf_counter()
        self.canvas.draw()
        end = time.perf_counter()
        self._last_draw = end
        self.last_draw_s = end - start
        self.n_draws += 1

    def request_draw(self, min_interval_s: float) -> bool:
        """Redraw unless the last one was less than ``min_interval_s`` ago (or less than
        :data:`DUTY_FACTOR` times its own duration ago).

        Returns True if it redrew. Callers with fresh data simply call this again on the
        next update; at most one redraw per interval happens.
        """
        if not self.draw_due(min_interval_s):
            return False
        self.draw()
        return True

    def draw_due(self, min_interval_s: float) -> bool:
        """Whether :meth:`request_draw` would redraw now (to prepare data only when due)."""
        wait = max(min_interval_s, DUTY_FACTOR * self.last_draw_s)
        return time.perf_counter() - self._last_draw >= wait

    def save_png(self, path) -> None:
        """Write the figure as PNG (caller handles atomicity)."""
        self.figure.savefig(path, format="png", dpi=150, facecolor=self.figure.get_facecolor())


class SoftmaxBars:
    """Bar chart of a softmax over z-bins; bars are created once and then updated.

    Parameters
    ----------
    canvas
        Where to draw.
    title
        Axes title.
    autoscale
        Fit the y axis to the highest bar (else fixed 0..1).
    """

    def __init__(
        self, canvas: PlotCanvas, title: str = "softmax over z-bins", *, autoscale: bool = True
    ) -> None:
        self.canvas = canvas
        self.autoscale = autoscale  # False: y stays 0..1 (cheaper redraws, no tick relayout)
        self.ax = canvas.add_axes()
        self.ax.set_title(title, fontsize=9)
        self.ax.set_xlabel("z (um)", fontsize=8)
        self.ax.set_ylabel("P", fontsize=8)
        self.ax.set_ylim(0, 1)
        self._bars = None
        self._centres: np.ndarray | None = None
        self._marker = self.ax.axvline(0, color=WARN, linewidth=1.2, visible=False)
        self.canvas.figure.tight_layout()
        self.heights = np.empty(0)

    def set(self, probs: np.ndarray, bin_centres_um: np.ndarray, z_um: float | None = None) -> None:
        """Show ``probs`` over ``bin_centres_um``; mark ``z_um`` with a line. No redraw."""
        probs = np.asarray(probs, dtype=float)
        centres = np.asarray(bin_centres_um, dtype=float)
        if self._centres is None or not np.array_equal(centres, self._centres):
            if self._bars is not None:
                self._bars.remove()
            width = float(centres[1] - centres[0]) * 0.85 if centres.size > 1 else 0.8
            self._bars = self.ax.bar(centres, probs, width=width, color=ACCENT)
            self.ax.set_xlim(centres[0] - width, centres[-1] + width)
            self._centres = centres
        else:
            for bar, h in zip(self._bars, probs, strict=True):
                bar.set_height(h)
        if self.autoscale:
            top = float(probs.max()) if probs.size else 1.0
            self.ax.set_ylim(0, max(0.05, min(1.0, top * 1.15)))
        if z_um is not None and math.isfinite(z_um):
            self._marker.set_xdata([z_um, z_um])
            self._marker.set_visible(True)
        else:
            self._marker.set_visible(False)
        self.heights = probs
