"""What the acquisition dock shows of the refocuses: per-position traces and last decisions.

:class:`RefocusView` takes :class:`~napari_zfocus.acquisition.settings.FocusRecord` batches
on the GUI thread (the dock drains them from a queue the acquisition thread fills) and shows
three light QPainter plots (estimate, correction and confidence against the time point, one
line per position, like :mod:`napari_zfocus._qt._live_plots`) and a table with the last
decision of each position.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_zfocus._qt._canvas import COLOURS, FOREGROUND
from napari_zfocus._qt._live_plots import MARGINS, LivePlot
from napari_zfocus.acquisition.settings import FocusRecord

__all__ = ["PositionTrace", "RefocusView", "position_colour"]

#: Plots repaint at most this often while records stream in (seconds).
REPAINT_INTERVAL_S = 0.2
#: Columns of the last-decision table.
#: (Estimate and confidence are in the plots and in each row's tooltip: the dock is narrow.)
TABLE_COLUMNS = ("pos.", "t", "decision", "corr. um")
DECISION_COLUMN = 2


def position_colour(i: int) -> QColor:
    """Colour of the ``i``-th position: the docks' palette first, then spread hues."""
    if i < len(COLOURS):
        return QColor(COLOURS[i])
    return QColor.fromHsv(int((i * 137.5) % 360), 160, 235)  # golden-angle hues


class PositionTrace(LivePlot):
    """One value against the time point, one line (with dots) per position.

    Parameters
    ----------
    title
        Shown in the top margin (with the legend when ``legend``).
    y_fixed
        A fixed y range (confidence: 0..1); None fits the data.
    legend
        Draw the positions' colours after the title.
    """

    def __init__(
        self, title: str, *, y_fixed: tuple[float, float] | None = None, legend: bool = False,
        height_px: int = 84, parent: QWidget | None = None,
    ) -> None:
        super().__init__(height_px, "", parent)
        self.title = title
        self.y_fixed = y_fixed
        self.legend = legend
        self.series: dict[str, tuple[list[float], list[float]]] = {}

    def add(self, label: str, x: float, y: float) -> None:
        """Append one point to the line of position ``label`` (NaN: a gap)."""
        xs, ys = self.series.setdefault(label, ([], []))
        xs.append(float(x))
        ys.append(float(y))

    def clear(self) -> None:
        """Forget every line."""
        self.series.clear()
        self.update()

    def refresh(self) -> None:
        """Fit the axes to the data (called before each repaint)."""
        xs = [x for values, _ in self.series.values() for x in values]
        ys = [y for _, values in self.series.values() for y in values if math.isfinite(y)]
        lo_x, hi_x = (min(xs), max(xs)) if xs else (0.0, 1.0)
        self.x_range = (lo_x, hi_x if hi_x > lo_x else lo_x + 1.0)
        if self.y_fixed is not None:
            self.y_range = self.y_fixed
        elif ys:
            lo, hi = min(ys), max(ys)
            pad = max(0.5, 0.1 * (hi - lo))
            self.y_range = (lo - pad, hi + pad)
        else:
            self.y_range = (-1.0, 1.0)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.refresh()
        super().paintEvent(event)
        painter = QPainter(self)
        try:
            self._paint_header(painter)
        finally:
            painter.end()

    def _paint_header(self, painter: QPainter) -> None:
        painter.setFont(QFont(painter.font().family(), 7))
        painter.setPen(QColor(FOREGROUND))
        x = float(MARGINS[0])
        painter.drawText(QPointF(x, 11), self.title)
        if not self.legend:
            return
        metrics = painter.fontMetrics()
        x += metrics.horizontalAdvance(self.title) + 14
        for i, label in enumerate(self.series):
            width = metrics.horizontalAdvance(label)
            if x + 15 + width > self.width() - 4:  # more positions than room: say so
                painter.setPen(QColor(FOREGROUND))
                painter.drawText(QPointF(x, 11), f"+{len(self.series) - i}")
                break
            painter.setPen(QPen(position_colour(i), 2))
            painter.drawLine(QPointF(x, 8), QPointF(x + 12, 8))
            painter.setPen(QColor(FOREGROUND))
            painter.drawText(QPointF(x + 15, 11), label)
            x += 15 + width + 8

    def paint_data(self, painter: QPainter, rect: QRectF) -> None:
        for i, (xs, ys) in enumerate(self.series.values()):
            colour = position_colour(i)
            pen = QPen(colour)
            pen.setWidthF(1.2)
            px, py = self.to_px(np.asarray(xs), np.asarray(ys), rect)
            ok = np.isfinite(py)
            painter.setPen(pen)
            # NaN leaves a gap: draw each finite run as its own polyline.
            edges = np.flatnonzero(np.diff(np.concatenate([[False], ok, [False]]).astype(np.int8)))
            for start, stop in zip(edges[::2], edges[1::2], strict=True):
                if stop - start >= 2:
                    points = zip(px[start:stop], py[start:stop], strict=True)
                    painter.drawPolyline(QPolygonF([QPointF(a, b) for a, b in points]))
            painter.setBrush(colour)
            for a, b in zip(px[ok], py[ok], strict=True):  # few points: mark each refocus
                painter.drawEllipse(QPointF(a, b), 1.8, 1.8)


def _number(value: float, fmt: str) -> str:
    return format(value, fmt) if math.isfinite(value) else "-"


class RefocusView(QWidget):
    """Per-position traces of the refocuses and the last decision of each position."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel("No refocus yet.")
        self.summary.setWordWrap(True)
        # A summary that grows as records arrive must wrap, not widen the dock.
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary.setMinimumWidth(200)
        self.estimate = PositionTrace("estimate (um)", legend=True)
        self.correction = PositionTrace("correction (um)")
        self.confidence = PositionTrace("confidence", y_fixed=(0.0, 1.0))
        self.confidence.xlabel = "time point"
        self.plots = (self.estimate, self.correction, self.confidence)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(DECISION_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.setMinimumHeight(112)  # four positions without scrolling
        self.table.setMaximumHeight(190)
        layout.addWidget(self.summary)
        for plot in self.plots:
            layout.addWidget(plot)
        layout.addWidget(self.table)
        self.records: list[FocusRecord] = []
        self._rows: dict[str, int] = {}

    def clear(self) -> None:
        """Forget the records (a new acquisition started)."""
        self.records.clear()
        self._rows.clear()
        self.table.setRowCount(0)
        for plot in self.plots:
            plot.clear()
        self.summary.setText("No refocus yet.")

    def add(self, records: Iterable[FocusRecord]) -> int:
        """Show ``records`` (in arrival order); a record numbered 0 starts a new acquisition.

        Returns how many were added.
        """
        added = 0
        for record in records:
            if record.index == 0 and self.records:
                self.clear()
            self.records.append(record)
            label = record.position or f"p{record.p}"
            x = float(record.t if record.t is not None else record.index)
            self.estimate.add(label, x, record.estimate_um)
            self.correction.add(label, x, record.correction_um)
            self.confidence.add(label, x, record.confidence)
            self._show_last(label, record)
            added += 1
        if added:
            self._show_summary()
            for plot in self.plots:
                plot.request_update(REPAINT_INTERVAL_S)
        return added

    def repaint_now(self) -> None:
        """Repaint the plots at once (the last batch may have been rate-limited)."""
        for plot in self.plots:
            plot.update()

    def _show_last(self, label: str, record: FocusRecord) -> None:
        row = self._rows.get(label)
        if row is None:
            row = self._rows[label] = self.table.rowCount()
            self.table.insertRow(row)
        texts = (label, "-" if record.t is None else str(record.t), record.decision,
                 _number(record.correction_um, "+.2f"))
        tip = (f"estimate {_number(record.estimate_um, '+.2f')} um, confidence "
               f"{_number(record.confidence, '.2f')}, {record.focus_frames} focus frame(s)"
               + (f"; {record.reason}" if record.reason else ""))
        for column, text in enumerate(texts):
            item = QTableWidgetItem(text)
            item.setToolTip(tip)
            if column == 0:
                item.setForeground(position_colour(row))
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            self.table.setItem(row, column, item)

    def _show_summary(self) -> None:
        last = self.records[-1]
        frames = sum(r.focus_frames for r in self.records)
        text = (f"{len(self.records)} refocuses, {frames} focus frames "
                f"({frames / len(self.records):.2f} per refocus); last: {last.position} "
                f"t={'-' if last.t is None else last.t} {last.decision}")
        if last.reason:
            text += f" ({last.reason})"
        self.summary.setText(text)
