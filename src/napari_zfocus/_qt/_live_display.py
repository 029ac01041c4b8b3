"""What the live dock shows of each frame: the image layer, the readout, softmax and trace.

:class:`LiveReadout` renders one :class:`~napari_zfocus.live.frame_loop.LiveResult` at a
time (the newest, handed over by the dock's display timer) and the loop's
:class:`~napari_zfocus.live.frame_loop.LiveStats`. Labels and the on-image text follow the
frames at most a few times a second: a label change repaints the window around the canvas.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QGridLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from napari_zfocus._qt._live_plots import SoftmaxStrip, TraceView
from napari_zfocus._qt._viewer import camera, text_overlay
from napari_zfocus.live.autofocus import LiveOutput
from napari_zfocus.live.frame_loop import LiveResult, LiveStats

LAYER_NAME = "live"

#: For this long after the live layer appears, the view is fitted again when the canvas
#: changes size (the dock settles its width as its texts arrive) unless the user moved it.
SETTLE_S = 3.0
#: Labels and the on-image text follow the frames at most 4 times a second.
TEXT_INTERVAL_S = 0.25
SOFTMAX_INTERVAL_S = 0.2
TRACE_INTERVAL_S = 0.5

_READOUT = (
    ("estimate", "estimate"), ("confidence", "confidence"), ("stage", "stage z"),
    ("locked", "locked"), ("decision", "decision"), ("fps", "processed"),
    ("gui", "display"), ("latency", "latency"),
)


class LiveReadout(QWidget):
    """The "Now" readout, the softmax strip and the focus trace, plus the live image layer.

    Parameters
    ----------
    viewer
        The napari viewer the live layer goes to (None: no layer, e.g. in tests).
    """

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.layer: Any = None
        self.last_output: LiveOutput | None = None
        self.last_stats: LiveStats | None = None
        self.gui_updates = 0
        self.gui_window: deque[tuple[float, float]] = deque(maxlen=200)  # (t, latency)
        self._t0: float | None = None
        self._last_text = -math.inf
        self._fitted: tuple[float, Any] | None = None  # (when, the view it fitted)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        readout = QGroupBox("Now")
        grid = QGridLayout(readout)
        self.labels: dict[str, QLabel] = {}
        for i, (key, text) in enumerate(_READOUT):
            value = QLabel("-")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(QLabel(text), i // 2, 2 * (i % 2))
            grid.addWidget(value, i // 2, 2 * (i % 2) + 1)
            self.labels[key] = value
        layout.addWidget(readout)
        self.softmax = SoftmaxStrip(90)
        layout.addWidget(self.softmax)
        self.trace = TraceView(
            ("stage z", "estimated sample z", "true sample z (sim)"), max_points=3000
        )
        layout.addWidget(self.trace)

    def reset(self) -> None:
        """A new live session: time from zero, empty trace, fresh display statistics."""
        self._t0 = None
        self.gui_updates = 0
        self.gui_window.clear()
        self.trace.clear()

    def show_stats(self, stats: LiveStats) -> None:
        """The loop's throughput and the display's own rate and latency (last second)."""
        self.last_stats = stats
        now = time.perf_counter()
        recent = [(t, lat) for t, lat in self.gui_window if now - t <= 1.0]
        gui_fps = len(recent) / 1.0 if recent else 0.0
        latency = 1e3 * float(np.mean([lat for _, lat in recent])) if recent else math.nan
        self.labels["fps"].setText(f"{stats.fps:.0f} frames/s ({stats.processing_ms:.1f} ms)")
        self.labels["gui"].setText(f"{gui_fps:.0f} /s, {stats.dropped} skipped")
        self.labels["latency"].setText(f"{latency:.0f} ms" if math.isfinite(latency) else "-")

    def show(self, result: LiveResult, pixel_size_um: float) -> None:
        """Show one processed frame: image in place, trace, softmax, and (paced) the text."""
        now = time.perf_counter()
        out: LiveOutput = result.output
        self._show_image(result.frame.image, pixel_size_um)
        self.last_output = out
        self.gui_updates += 1
        self.gui_window.append((now, now - result.t_grab))
        if self._t0 is None:
            self._t0 = out.time_s
        self.trace.append(out.time_s - self._t0, out.stage_z_um, out.focus_z_um, out.sample_z_um)
        pred = out.prediction
        if pred is not None:
            self.softmax.set(pred.softmax, pred.bin_centres_um, pred.z_um)
            self.softmax.request_update(SOFTMAX_INTERVAL_S)
        self.trace.request_update(TRACE_INTERVAL_S)
        if now - self._last_text >= TEXT_INTERVAL_S:
            self._last_text = now
            self._update_text(out)
        if out.message:
            self.labels["decision"].setText(out.message[:60])

    def _show_image(self, image: np.ndarray, pixel_size_um: float) -> None:
        """Update the one live layer in place; (re)create it for a new frame shape."""
        viewer = self.viewer
        if viewer is None:
            return
        layer = self.layer
        if layer is not None and layer in viewer.layers and layer.data.shape == image.shape:
            layer.data = image  # in place: one layer, no growing stack
            self._keep_fitted()
            return
        if layer is not None and layer in viewer.layers:
            viewer.layers.remove(layer)
        px = pixel_size_um or 1.0
        self.layer = viewer.add_image(image, name=LAYER_NAME, scale=(px, px), colormap="gray")
        self.layer.reset_contrast_limits()
        self._fit()
        viewer.scale_bar.visible = True
        viewer.scale_bar.unit = "um"

    def _view(self) -> Any:
        """What a fit depends on and sets: canvas size, camera zoom and centre."""
        viewer = self.viewer
        canvas = getattr(viewer, "canvas", None)
        size = getattr(canvas, "size", None) or getattr(viewer, "_canvas_size", None)
        cam = camera(viewer)
        return (tuple(size or ()), cam.zoom, tuple(cam.center))

    def _fit(self) -> None:
        self.viewer.reset_view()
        self._fitted = (time.perf_counter(), self._view())

    def _keep_fitted(self) -> None:
        """Fit again if the canvas resized soon after the fit and the user left the view."""
        if self._fitted is None:
            return
        when, (size, zoom, centre) = self._fitted
        if time.perf_counter() - when > SETTLE_S:
            self._fitted = None
            return
        now_size, now_zoom, now_centre = self._view()
        if now_size != size and (now_zoom, now_centre) == (zoom, centre):
            self._fit()

    def _update_text(self, out: LiveOutput) -> None:
        """The readout labels and the estimate written on the image."""
        pred = out.prediction
        lab = self.labels
        lab["stage"].setText(f"{out.stage_z_um:+.2f} um")
        lab["locked"].setText("-" if math.isnan(out.locked_um) else f"{out.locked_um:+.2f} um")
        if out.decision is not None:
            d = out.decision
            lab["decision"].setText(f"{d.reason} {d.move_um:+.2f} um" if d.move_um else d.reason)
        elif not out.message:
            lab["decision"].setText("autofocus off")
        if pred is None:
            lab["estimate"].setText("-")
            lab["confidence"].setText("-")
            text = f"no estimate: {out.message[:50]}"
        else:
            flag = "  BIMODAL" if pred.bimodal else ""
            lab["estimate"].setText(f"{pred.z_um:+.2f} um")
            lab["confidence"].setText(f"{pred.confidence:.2f}{flag}")
            lock = "" if math.isnan(out.locked_um) else f"   lock {out.locked_um:+.2f} um"
            af = "   AF on" if out.autofocus else ""
            text = f"z {pred.z_um:+.2f} um   conf {pred.confidence:.2f}{flag}{lock}{af}"
        if self.viewer is not None:
            overlay = text_overlay(self.viewer)
            overlay.text = text
            overlay.visible = True
