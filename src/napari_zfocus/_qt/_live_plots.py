"""Light live plots for the live dock, painted with QPainter.

The live dock redraws its softmax bars and its focus trace many times a minute while the
autofocus loop runs in the same process. A matplotlib redraw costs ~80 ms of GUI-thread
time on a 2-core machine (it also holds the GIL the loop needs); these widgets paint the
same content in about a millisecond. Static plots (inspection, training) stay matplotlib.
Colours follow :mod:`napari_zfocus._qt._canvas` (napari's dark theme).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

from napari_zfocus._qt._canvas import ACCENT, BACKGROUND, COLOURS, FOREGROUND, GRID, WARN

__all__ = ["LivePlot", "SoftmaxStrip", "TraceView", "nice_ticks"]

# Margins around the plot area, in pixels: left (y tick labels), top (legend), right, bottom
# (x tick labels and axis label).
MARGINS = (34, 16, 8, 26)


def nice_ticks(lo: float, hi: float, n: int = 4) -> np.ndarray:
    """About ``n`` round tick values (steps of 1, 2 or 5 x 10^k) inside ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return np.asarray([lo]) if math.isfinite(lo) else np.empty(0)
    raw = (hi - lo) / max(1, n)
    base = 10.0 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1.0, 2.0, 5.0, 10.0) if m * base >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return np.arange(first, hi + 1e-9 * step, step)


def _tick_text(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 1e-6 else f"{value:.1f}"


class LivePlot(QWidget):
    """A dark plot area with axes, ticks and rate-limited repaints.

    Subclasses set the data ranges and implement :meth:`paint_data`.
    """

    def __init__(self, height_px: int, xlabel: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(height_px)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.xlabel = xlabel
        self.x_range = (0.0, 1.0)
        self.y_range = (0.0, 1.0)
        self._last_update = -math.inf
        self.n_paints = 0

    def sizeHint(self):  # noqa: N802 - Qt override
        hint = super().sizeHint()
        hint.setHeight(self.minimumHeight())
        return hint

    def request_update(self, min_interval_s: float) -> bool:
        """Schedule a repaint unless one was scheduled less than ``min_interval_s`` ago."""
        now = time.perf_counter()
        if now - self._last_update < min_interval_s:
            return False
        self._last_update = now
        self.update()
        return True

    def plot_rect(self) -> QRectF:
        """The data area inside the margins, in widget pixels."""
        left, top, right, bottom = MARGINS
        width = max(1, self.width() - left - right)
        return QRectF(left, top, width, max(1, self.height() - top - bottom))

    def to_px(self, x: np.ndarray, y: np.ndarray, rect: QRectF) -> tuple[np.ndarray, np.ndarray]:
        """Data coordinates to widget pixels."""
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        px = rect.left() + (np.asarray(x, float) - x0) / (x1 - x0 or 1.0) * rect.width()
        py = rect.bottom() - (np.asarray(y, float) - y0) / (y1 - y0 or 1.0) * rect.height()
        return px, py

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), QColor(BACKGROUND))
            painter.setFont(QFont(painter.font().family(), 7))
            rect = self.plot_rect()
            self._paint_axes(painter, rect)
            painter.setClipRect(rect)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            self.paint_data(painter, rect)
        finally:
            painter.end()
        self.n_paints += 1

    def _paint_axes(self, painter: QPainter, rect: QRectF) -> None:
        grid, text = QPen(QColor(GRID)), QColor(FOREGROUND)
        grid.setWidthF(0.5)
        xs, ys = nice_ticks(*self.x_range, n=5), nice_ticks(*self.y_range, n=4)
        px, _ = self.to_px(xs, np.zeros_like(xs), rect)
        _, py = self.to_px(np.zeros_like(ys), ys, rect)
        for value, x in zip(xs, px, strict=True):
            painter.setPen(grid)
            painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
            painter.setPen(text)
            painter.drawText(
                QRectF(x - 20, rect.bottom() + 1, 40, 11),
                Qt.AlignmentFlag.AlignCenter,
                _tick_text(value),
            )
        for value, y in zip(ys, py, strict=True):
            painter.setPen(grid)
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
            painter.setPen(text)
            painter.drawText(
                QRectF(0, y - 6, rect.left() - 3, 12),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                _tick_text(value),
            )
        painter.setPen(text)
        painter.drawText(
            QRectF(rect.left(), rect.bottom() + 12, rect.width(), 12),
            Qt.AlignmentFlag.AlignCenter,
            self.xlabel,
        )
        painter.setPen(QPen(QColor(GRID)))
        painter.drawRect(rect)

    def paint_data(self, painter: QPainter, rect: QRectF) -> None:
        """Draw the data inside ``rect`` (clipped)."""
        raise NotImplementedError


class SoftmaxStrip(LivePlot):
    """Bars of a softmax over z-bins, with the estimate marked by a line."""

    def __init__(self, height_px: int = 90, parent: QWidget | None = None) -> None:
        super().__init__(height_px, "z (um)", parent)
        self.heights = np.empty(0)
        self.centres = np.empty(0)
        self.z_um = math.nan

    def set(self, probs: np.ndarray, bin_centres_um: np.ndarray, z_um: float | None = None) -> None:
        """Show ``probs`` over ``bin_centres_um``; mark ``z_um``. Repaint with
        :meth:`request_update`."""
        self.heights = np.asarray(probs, dtype=float)
        self.centres = np.asarray(bin_centres_um, dtype=float)
        self.z_um = math.nan if z_um is None else float(z_um)
        if self.centres.size:
            half = self._width() / 2
            self.x_range = (float(self.centres[0]) - half, float(self.centres[-1]) + half)

    def _width(self) -> float:
        return float(self.centres[1] - self.centres[0]) if self.centres.size > 1 else 1.0

    def paint_data(self, painter: QPainter, rect: QRectF) -> None:
        if not self.heights.size:
            return
        w = 0.85 * self._width()
        x0, y0 = self.to_px(self.centres - w / 2, self.heights, rect)
        x1, _ = self.to_px(self.centres + w / 2, self.heights, rect)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(ACCENT))
        bottom = rect.bottom()
        for a, b, top in zip(x0, x1, y0, strict=True):
            painter.drawRect(QRectF(a, top, max(1.0, b - a), bottom - top))
        if math.isfinite(self.z_um):
            (x,), _ = self.to_px(np.asarray([self.z_um]), np.zeros(1), rect)
            pen = QPen(QColor(WARN))
            pen.setWidthF(1.5)
            painter.setPen(pen)
            painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))


class TraceView(LivePlot):
    """Bounded time series (the paper's Fig. 6-style live trace), one line per label.

    Parameters
    ----------
    labels
        One line per label, in :data:`~napari_zfocus._qt._canvas.COLOURS` order; shown as
        a legend above the plot.
    max_points
        History length; older points are dropped.
    """

    def __init__(
        self,
        labels: Sequence[str],
        *,
        max_points: int = 3000,
        height_px: int = 170,
        xlabel: str = "time (s)",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(height_px, xlabel, parent)
        self.labels = list(labels)
        self.t: deque[float] = deque(maxlen=max_points)
        self.values: list[deque[float]] = [deque(maxlen=max_points) for _ in self.labels]
        self._history: tuple[np.ndarray, list[np.ndarray]] = self.series()

    def append(self, t: float, *values: float) -> None:
        """Add one sample (NaN values leave a gap)."""
        self.t.append(float(t))
        for store, v in zip(self.values, values, strict=True):
            store.append(float(v))

    def clear(self) -> None:
        """Forget the history."""
        self.t.clear()
        for store in self.values:
            store.clear()
        self.refresh()
        self.update()

    def __len__(self) -> int:
        return len(self.t)

    def series(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The history as arrays: times, and one value array per label."""
        t = np.fromiter(self.t, float, len(self.t))
        return t, [np.fromiter(s, float, len(s)) for s in self.values]

    def refresh(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """Fit the axes to the history (called before each repaint); return the history."""
        t, values = self.series()
        if not t.size:
            self.x_range, self.y_range = (0.0, 1.0), (-1.0, 1.0)
            return t, values
        lo_t, hi_t = float(t[0]), float(t[-1])
        self.x_range = (lo_t, hi_t if hi_t > lo_t else lo_t + 1.0)
        finite = np.concatenate(values)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            pad = max(0.5, 0.1 * (hi - lo))
            self.y_range = (lo - pad, hi + pad)
        return t, values

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._history = self.refresh()  # paint_data draws exactly what the axes were fit to
        super().paintEvent(event)
        painter = QPainter(self)
        try:
            self._paint_legend(painter)
        finally:
            painter.end()

    def _paint_legend(self, painter: QPainter) -> None:
        painter.setFont(QFont(painter.font().family(), 7))
        x = float(MARGINS[0])
        for i, label in enumerate(self.labels):
            colour = QColor(COLOURS[i % len(COLOURS)])
            painter.setPen(QPen(colour, 2))
            painter.drawLine(QPointF(x, 8), QPointF(x + 12, 8))
            painter.setPen(QColor(FOREGROUND))
            width = painter.fontMetrics().horizontalAdvance(label)
            painter.drawText(QPointF(x + 15, 11), label)
            x += 15 + width + 10

    def paint_data(self, painter: QPainter, rect: QRectF) -> None:
        t, values = self._history
        if t.size < 2:
            return
        styles = (
            Qt.PenStyle.SolidLine, Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine
        )
        # More points than pixels only costs time: keep about two per pixel column.
        step = max(1, int(t.size // max(1.0, 2 * rect.width())))
        for i, v in enumerate(values):
            pen = QPen(QColor(COLOURS[i % len(COLOURS)]))
            pen.setWidthF(1.2)
            pen.setStyle(styles[i % len(styles)])
            painter.setPen(pen)
            px, py = self.to_px(t[::step], v[::step], rect)
            ok = np.isfinite(py)
            # NaN leaves a gap: draw each finite run as its own polyline.
            edges = np.flatnonzero(np.diff(np.concatenate([[False], ok, [False]]).astype(np.int8)))
            for start, stop in zip(edges[::2], edges[1::2], strict=True):
                if stop - start >= 2:
                    points = zip(px[start:stop], py[start:stop], strict=True)
                    painter.drawPolyline(QPolygonF([QPointF(a, b) for a, b in points]))
