"""Live autofocus dock: live view, z estimate overlay, focus lock and a drift trace.

A thin view over :mod:`napari_zfocus.live`. Frames are grabbed and processed (model
estimate + controller decision + maybe a focus move) in a worker thread by
:class:`~napari_zfocus.live.frame_loop.LiveLoop`; the newest result waits in a
latest-only slot that a GUI timer polls. When the GUI falls behind, stale results are
dropped, never queued, so the display always shows the newest frame.

Every change the user makes (lock, unlock, autofocus, controller settings) is sent to the
loop thread with :meth:`LiveLoop.submit`, so only one thread ever touches the controller.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_zfocus._qt._lifecycle import CloseWatcher
from napari_zfocus._qt._live_plots import SoftmaxStrip, TraceView
from napari_zfocus._qt._viewer import text_overlay
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.autofocus import LiveAutofocus, LiveOutput
from napari_zfocus.live.controller import ControllerSettings
from napari_zfocus.live.display_pacer import DisplayPacer
from napari_zfocus.live.frame_loop import LiveLoop, LiveResult, LiveStats
from napari_zfocus.live.headless import DEMO_MODEL

if TYPE_CHECKING:
    import napari

LAYER_NAME = "live"

# GUI refresh: the display pacer decides how often a frame is shown (keeping the GUI
# thread within its CPU budget); text and plots are refreshed less often than frames.
POLL_INTERVAL_MS = 15
#: Labels and the on-image text: a label change repaints the window around the canvas
#: and new overlay text is laid out again, so both follow the frames at most 4 times/s.
TEXT_INTERVAL_S = 0.25
SOFTMAX_INTERVAL_S = 0.2
TRACE_INTERVAL_S = 0.5
#: The demo microscope runs its clock 60x real time: one simulated minute per second, so
#: the slow thermal drift of the paper (40 um in 24 h) is visible within minutes.
SIM_SPEED = 60.0


def default_simulated_microscope(speed: float = SIM_SPEED) -> Any:
    """The demo microscope: simulated sample drifting in (sped-up) real time.

    Built in a worker thread: rendering the first plane cache takes seconds.
    """
    from napari_zfocus.live.simulated_microscope import (
        ScaledClock,
        SimulatedMicroscope,
        SimulatedMicroscopeSettings,
    )

    settings = SimulatedMicroscopeSettings(background_render=True)
    return SimulatedMicroscope(settings, clock=ScaledClock(speed))


def as_microscope(obj: Any) -> Any:
    """Wrap a pymmcore-plus core in :class:`MMCoreMicroscope`; pass anything else through."""
    try:
        from pymmcore_plus import CMMCorePlus
    except ImportError:  # pymmcore-plus is optional
        return obj
    if isinstance(obj, CMMCorePlus):
        from napari_zfocus.live.mmcore import MMCoreMicroscope

        return MMCoreMicroscope(obj)
    return obj


def load_mm_config(path: str) -> Any:
    """Load a Micro-Manager configuration into a new core and wrap it (worker thread)."""
    from napari_zfocus.live.mmcore import MMCoreMicroscope, load_mmcore

    return MMCoreMicroscope(load_mmcore(path))


def _spin(
    lo: float, hi: float, value: float, step: float, decimals: int = 2, suffix: str = ""
) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    if suffix:
        box.setSuffix(suffix)
    box.setKeyboardTracking(False)  # apply on Enter / arrows, not on every keystroke
    return box


class _Teardown:
    """Stops the live loop when the widget is destroyed (must not reference the widget)."""

    def __init__(self) -> None:
        self.loop: LiveLoop | None = None
        self.owned_microscope: Any = None
        self.done = False  # set once the widget is gone: late worker signals are ignored

    def __call__(self, *_: Any) -> None:
        self.done = True
        loop = self.loop
        if loop is not None:
            loop.stop()
            loop.wait(5.0)
        scope, self.owned_microscope = self.owned_microscope, None
        if scope is not None:
            # Best effort while shutting down: a failing camera must not block closing.
            with contextlib.suppress(Exception):
                scope.close()


class LiveAutofocusWidget(QWidget):
    """Live view with CNN focus estimate, focus lock and autofocus.

    Parameters
    ----------
    viewer
        The napari viewer (injected by npe2).
    parent
        Qt parent.
    microscope
        A :class:`~napari_zfocus.live.microscope.Microscope`, a ``CMMCorePlus`` core
        (wrapped in :class:`~napari_zfocus.live.mmcore.MMCoreMicroscope`), or None for
        the simulated microscope (built on the first start).
    model_path
        Model file; default the bundled demo model when it exists.
    max_fps
        Optional frame-rate cap of the live loop (None: camera rate).
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        parent: QWidget | None = None,
        *,
        microscope: Any = None,
        model_path: str | Path | None = None,
        max_fps: float | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.max_fps = max_fps
        self.microscope: Any = as_microscope(microscope) if microscope is not None else None
        self.predictor: Any = None
        self.live: LiveAutofocus | None = None
        self.loop: LiveLoop | None = None
        self.worker: Any = None
        self.layer: Any = None
        self._teardown = _Teardown()
        # Docks get no closeEvent when the viewer closes; watch the main window instead.
        self._close_watcher = CloseWatcher(self.shutdown)
        self._messages: deque[tuple[str, str]] = deque()  # (kind, text) from the loop thread
        self._gui_updates = 0
        self._gui_window: deque[tuple[float, float]] = deque(maxlen=200)  # (t, latency)
        self._last_text = -math.inf
        self._t0: float | None = None
        self.last_output: LiveOutput | None = None
        self.last_stats: LiveStats | None = None

        self._build_ui()
        self.pacer = DisplayPacer()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.timeout.connect(self._poll)
        # Stop the loop thread when this widget goes away (dock closed, viewer closed).
        self.destroyed.connect(self._teardown)

        if model_path is None and DEMO_MODEL.is_file():
            model_path = DEMO_MODEL
        if model_path is not None:
            self.load_model(model_path)
        self._update_state()

    # -- UI ---------------------------------------------------------------------------

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)

        source = QGroupBox("Microscope and model")
        form = QGridLayout(source)
        self.scope_label = QLabel(self._scope_text())
        self.scope_label.setWordWrap(True)
        self.mm_button = QPushButton("Load Micro-Manager config...")
        self.mm_button.clicked.connect(self._choose_mm_config)
        self.model_label = QLabel("no model loaded")
        self.model_label.setWordWrap(True)
        self.model_button = QPushButton("Load model...")
        self.model_button.clicked.connect(self._choose_model)
        form.addWidget(self.scope_label, 0, 0)
        form.addWidget(self.mm_button, 0, 1)
        form.addWidget(self.model_label, 1, 0)
        form.addWidget(self.model_button, 1, 1)
        layout.addWidget(source)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start live")
        self.start_button.setCheckable(True)
        self.start_button.toggled.connect(self._on_start_toggled)
        self.lock_button = QPushButton("Lock focus")
        self.lock_button.setCheckable(True)
        self.lock_button.toggled.connect(self._on_lock_toggled)
        self.autofocus_box = QCheckBox("Autofocus")
        self.autofocus_box.setToolTip("Move the focus drive to hold the locked estimate")
        self.autofocus_box.toggled.connect(self._on_autofocus_toggled)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.lock_button)
        buttons.addWidget(self.autofocus_box)
        layout.addLayout(buttons)

        settings = QGroupBox("Controller")
        sform = QFormLayout(settings)
        d = ControllerSettings()
        self.dead_band = _spin(0.0, 20.0, d.dead_band_um, 0.1, suffix=" um")
        self.gain = _spin(0.05, 1.0, d.gain, 0.05)
        self.max_step = _spin(0.1, 50.0, d.max_step_um, 0.5, suffix=" um")
        self.min_conf = _spin(0.0, 1.0, d.min_confidence, 0.05)
        self.z_min = _spin(-10000.0, 10000.0, -200.0, 10.0, 1, " um")
        self.z_max = _spin(-10000.0, 10000.0, 200.0, 10.0, 1, " um")
        for label, box in (
            ("dead band", self.dead_band),
            ("gain", self.gain),
            ("max step", self.max_step),
            ("min confidence", self.min_conf),
            ("z min", self.z_min),
            ("z max", self.z_max),
        ):
            sform.addRow(label, box)
            box.valueChanged.connect(self._on_settings_changed)
        layout.addWidget(settings)

        readout = QGroupBox("Now")
        grid = QGridLayout(readout)
        self.labels: dict[str, QLabel] = {}
        names = (
            ("estimate", "estimate"), ("confidence", "confidence"), ("stage", "stage z"),
            ("locked", "locked"), ("decision", "decision"), ("fps", "processed"),
            ("gui", "display"), ("latency", "latency"),
        )
        for i, (key, text) in enumerate(names):
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

        self.save_log_button = QPushButton("Save decision log (CSV)...")
        self.save_log_button.clicked.connect(self._choose_log_path)
        layout.addWidget(self.save_log_button)
        layout.addStretch(1)

    def _scope_text(self) -> str:
        if self.microscope is None:
            return "Simulated microscope (built on start)"
        return f"Microscope: {type(self.microscope).__name__}"

    def _update_state(self) -> None:
        """Enable what makes sense in the current state."""
        live = self.is_live
        has_model = self.predictor is not None
        self.start_button.setEnabled(has_model or live)
        self.model_button.setEnabled(not live)
        self.mm_button.setEnabled(not live)
        self.lock_button.setEnabled(self.live is not None)
        self.start_button.blockSignals(True)
        self.start_button.setChecked(live)
        self.start_button.setText("Stop live" if live else "Start live")
        self.start_button.blockSignals(False)

    @property
    def is_live(self) -> bool:
        """True while the live loop runs (or is starting)."""
        return self.worker is not None

    # -- model and microscope ------------------------------------------------------------

    def load_model(self, path: str | Path) -> bool:
        """Load a model file; shows an error and keeps the old model on failure."""
        if self.is_live:
            show_warning("Stop live view before changing the model.")
            return False
        from napari_zfocus.model.inference import Predictor, available_cores

        try:
            # One core fewer than available for torch: the GUI thread needs one to stay
            # responsive, and OpenMP threads spinning on a busy core slow inference down.
            predictor = Predictor.from_file(
                path, num_threads=max(1, available_cores() - 1)
            )
        except ZFocusError as exc:
            show_error(str(exc))
            return False
        c = predictor.config
        self.set_predictor(
            predictor,
            f"{Path(path).name}: {c.field_um:g} um field at {c.pixel_size_um:g} um/px, "
            f"{c.n_bins} bins of {c.bin_um:g} um",
        )
        return True

    def set_predictor(self, predictor: Any, description: str = "") -> None:
        """Use ``predictor`` (with a ``predict(image, pixel_size_um)``) from the next start."""
        if self.is_live:
            raise ZFocusError("stop live view before changing the model")
        self.predictor = predictor
        self.live = None  # rebuilt with the new model on the next start
        self.model_label.setText(description or type(predictor).__name__)
        self._update_state()

    def set_microscope(self, microscope: Any) -> None:
        """Use another microscope (stops live view first)."""
        self.stop_live()
        self._close_owned_microscope()
        self.microscope = as_microscope(microscope)
        self.live = None
        self.scope_label.setText(self._scope_text())
        self._update_state()

    def _close_owned_microscope(self) -> None:
        scope, self._teardown.owned_microscope = self._teardown.owned_microscope, None
        if scope is not None:
            scope.close()
            if scope is self.microscope:
                self.microscope = None

    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load model", "", "zfocus models (*.zfm);;All files (*)"
        )
        if path:
            self.load_model(path)

    def _choose_mm_config(self) -> None:
        try:
            import pymmcore_plus  # noqa: F401
        except ImportError:
            show_error("Micro-Manager support needs pymmcore-plus: pip install pymmcore-plus")
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Micro-Manager configuration", "", "Micro-Manager config (*.cfg);;All files (*)"
        )
        if not path:
            return
        self.mm_button.setEnabled(False)
        self.scope_label.setText(f"Loading {Path(path).name}...")
        worker = create_worker(
            load_mm_config, path, _progress={"desc": "Loading Micro-Manager config"},
            _ignore_errors=True,
        )
        worker.returned.connect(self._on_mm_loaded)
        worker.errored.connect(self._on_worker_error)
        worker.finished.connect(self._guarded(lambda: self.scope_label.setText(self._scope_text())))
        worker.finished.connect(self._guarded(self._update_state))
        worker.start()

    def _on_mm_loaded(self, microscope: Any) -> None:
        self.set_microscope(microscope)
        self._teardown.owned_microscope = microscope  # we made the core: we close it

    # -- live loop ----------------------------------------------------------------------

    def controller_settings(self) -> ControllerSettings:
        """Controller settings from the fields (validated)."""
        settings = ControllerSettings(
            dead_band_um=self.dead_band.value(),
            gain=self.gain.value(),
            max_step_um=self.max_step.value(),
            min_confidence=self.min_conf.value(),
            z_limits_um=(self.z_min.value(), self.z_max.value()),
        )
        settings.validate()
        return settings

    def start_live(self) -> None:
        """Start live view (builds the simulated microscope first if needed)."""
        if self.is_live:
            return
        self._close_watcher.watch(self)  # docked by now: closing the viewer stops the loop
        if self.predictor is None:
            show_error("Load a model first (Load model...).")
            self._update_state()
            return
        try:
            self.controller_settings()
        except ZFocusError as exc:
            show_error(f"Controller settings: {exc}")
            self._update_state()
            return
        if self.microscope is None:
            self.scope_label.setText("Starting simulated microscope...")
            worker = create_worker(
                default_simulated_microscope, _progress={"desc": "Starting simulated microscope"},
                _ignore_errors=True,
            )
            worker.returned.connect(self._on_microscope_ready)
            worker.errored.connect(self._on_worker_error)
            worker.finished.connect(self._guarded(self._on_loop_finished, worker))
            self.worker = worker
            worker.start()
            self._update_state()
            return
        self._start_loop()

    def _on_microscope_ready(self, microscope: Any) -> None:
        self.microscope = microscope
        self._teardown.owned_microscope = microscope  # we made it: we close it
        self.scope_label.setText(f"Simulated microscope (time x{SIM_SPEED:g})")
        if self.worker is None:
            return  # the user pressed Stop while the microscope was starting
        self._start_loop()

    def _start_loop(self) -> None:
        if self.live is None or self.live.microscope is not self.microscope:
            self.live = LiveAutofocus(self.predictor, self.microscope, self.controller_settings())
            self._set_checked(self.lock_button, False)  # a new controller starts unlocked
        self.live.set_autofocus(self.autofocus_box.isChecked())
        self.loop = LiveLoop(self.microscope, self.live, max_fps=self.max_fps)
        self._teardown.loop = self.loop
        self._t0 = None
        self._gui_updates = 0
        self._gui_window.clear()
        self.pacer.reset()
        self.trace.clear()
        self.loop.arm()  # commands sent before the thread starts are queued for it
        worker = create_worker(self.loop.run, _ignore_errors=True)
        worker.yielded.connect(self._on_stats)
        worker.errored.connect(self._on_worker_error)
        worker.finished.connect(self._guarded(self._on_loop_finished, worker))
        self.worker = worker
        worker.start()
        self._timer.start()
        self._update_state()

    def stop_live(self, timeout_s: float = 5.0) -> None:
        """Stop live view and wait for the loop thread to release the camera."""
        loop, worker = self.loop, self.worker
        if loop is not None:
            loop.stop()
        if worker is not None:
            worker.quit()
        if loop is not None and not loop.wait(timeout_s):
            show_warning(f"Live loop did not stop within {timeout_s:g} s (camera hung?)")
        self._timer.stop()
        self.worker = None  # its late 'finished' signal is ignored (identity check)
        self._poll()  # show the very last frame and any pending message
        self._update_state()

    def _guarded(self, func: Any, *args: Any) -> Any:
        """Slot calling ``func(*args)`` unless the widget has been destroyed meanwhile.

        A worker's ``finished`` arrives through the event loop, possibly after the viewer
        (and this widget) closed; Qt only disconnects bound methods of live QObjects.
        """
        teardown = self._teardown

        def slot(*_: Any) -> None:
            if not teardown.done:
                func(*args)

        return slot

    def _on_loop_finished(self, worker: Any) -> None:
        if worker is not self.worker:
            return  # a late signal from an earlier run
        self._timer.stop()
        self.worker = None
        self._poll()  # the last frame and any pending message
        self._update_state()

    def _on_worker_error(self, exc: BaseException) -> None:
        show_error(str(exc) if isinstance(exc, ZFocusError) else f"Live autofocus stopped: {exc!r}")

    def _on_start_toggled(self, checked: bool) -> None:
        if checked:
            self.start_live()
        else:
            self.stop_live()

    # -- commands to the loop thread --------------------------------------------------------

    def _submit(self, command: Any) -> None:
        """Run ``command(live)`` in the loop thread; report ZFocusError via the GUI."""
        live = self.live
        if live is None:
            return

        def run() -> None:
            try:
                command(live)
            except ZFocusError as exc:
                self._messages.append(("error", str(exc)))

        if self.loop is not None:
            self.loop.submit(run)
        else:
            run()
        if not self.is_live:
            self._show_messages()

    def _on_lock_toggled(self, checked: bool) -> None:
        if checked:

            def lock(live: LiveAutofocus) -> None:
                try:
                    decision = live.lock()
                except ZFocusError:
                    self._messages.append(("unlock", ""))
                    raise
                locked = f"Focus locked at estimate {decision.estimate_um:+.2f} um"
                self._messages.append(("info", locked))

            self._submit(lock)
        else:
            self._submit(lambda live: live.unlock())

    def _on_autofocus_toggled(self, checked: bool) -> None:
        self._submit(lambda live: live.set_autofocus(checked))

    def _on_settings_changed(self, *_: Any) -> None:
        try:
            settings = self.controller_settings()
        except ZFocusError as exc:
            show_error(f"Controller settings: {exc}")
            return
        self._submit(lambda live: live.set_settings(settings))

    def _choose_log_path(self) -> None:
        if self.live is None:
            show_warning("No decisions yet: start live view first.")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save decision log", "decisions.csv", "CSV (*.csv)"
        )
        if path:
            self.save_decision_log(path)

    def save_decision_log(self, path: str | Path) -> None:
        """Export the controller's decision log as CSV (in the loop thread when live)."""

        def export(live: LiveAutofocus) -> None:
            try:
                live.controller.export_csv(path)
            except OSError as exc:
                raise ZFocusError(f"{path}: cannot write decision log ({exc.strerror})") from None
            self._messages.append(("info", f"Decision log saved to {path}"))

        self._submit(export)

    # -- display ------------------------------------------------------------------------------

    def _show_messages(self) -> None:
        while self._messages:
            kind, text = self._messages.popleft()
            if kind == "error":
                show_error(text)
            elif kind == "info":
                show_info(text)
            elif kind == "unlock":
                self._set_checked(self.lock_button, False)

    @staticmethod
    def _set_checked(button: Any, checked: bool) -> None:
        """Set a toggle's state without running its handler."""
        button.blockSignals(True)
        button.setChecked(checked)
        button.blockSignals(False)

    def _on_stats(self, stats: LiveStats) -> None:
        self.last_stats = stats
        now = time.perf_counter()
        recent = [(t, lat) for t, lat in self._gui_window if now - t <= 1.0]
        gui_fps = len(recent) / 1.0 if recent else 0.0
        latency = 1e3 * float(np.mean([lat for _, lat in recent])) if recent else math.nan
        self.labels["fps"].setText(f"{stats.fps:.0f} frames/s ({stats.processing_ms:.1f} ms)")
        self.labels["gui"].setText(f"{gui_fps:.0f} /s, {stats.dropped} skipped")
        self.labels["latency"].setText(f"{latency:.0f} ms" if math.isfinite(latency) else "-")

    def _poll(self) -> None:
        """Timer tick: show the newest result, if any (drops whatever it replaced)."""
        self._show_messages()
        loop = self.loop
        if loop is None:
            return
        # Leave the slot alone until the pacer allows a show: the loop keeps overwriting
        # it, so what is finally shown is the newest frame, and the GUI thread stays
        # within its CPU budget instead of slowing the autofocus loop (GIL, cores).
        now = time.perf_counter()
        if not self.pacer.due(now):
            return
        result = loop.slot.take()
        if result is None:
            return
        self._show(result)
        self.pacer.shown(now, time.thread_time())

    def _ensure_layer(self, image: np.ndarray) -> None:
        px = float(getattr(self.microscope, "pixel_size_um", 1.0) or 1.0)
        if self.layer is not None and self.layer in self.viewer.layers:
            if self.layer.data.shape == image.shape:
                return
            self.viewer.layers.remove(self.layer)
        self.layer = self.viewer.add_image(image, name=LAYER_NAME, scale=(px, px), colormap="gray")
        self.layer.reset_contrast_limits()
        self.viewer.reset_view()
        self.viewer.scale_bar.visible = True
        self.viewer.scale_bar.unit = "um"

    def _show(self, result: LiveResult) -> None:
        now = time.perf_counter()
        out: LiveOutput = result.output
        image = result.frame.image
        if (
            self.layer is None
            or self.layer not in self.viewer.layers
            or self.layer.data.shape != image.shape
        ):
            self._ensure_layer(image)
        else:
            self.layer.data = image  # in place: one layer, no growing stack
        self.last_output = out
        self._gui_updates += 1
        self._gui_window.append((now, now - result.t_grab))

        if self._t0 is None:
            self._t0 = out.time_s
        t = out.time_s - self._t0
        self.trace.append(t, out.stage_z_um, out.focus_z_um, out.sample_z_um)

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

    def _update_text(self, out: LiveOutput) -> None:
        """The dock's labels and the estimate written on the image."""
        pred = out.prediction
        lab = self.labels
        lab["stage"].setText(f"{out.stage_z_um:+.2f} um")
        lab["locked"].setText("-" if math.isnan(out.locked_um) else f"{out.locked_um:+.2f} um")
        if out.decision is not None:
            d = out.decision
            lab["decision"].setText(f"{d.reason} {d.move_um:+.2f} um" if d.move_um else d.reason)
        elif not out.message:
            lab["decision"].setText("autofocus off")
        overlay = text_overlay(self.viewer)
        if pred is None:
            lab["estimate"].setText("-")
            lab["confidence"].setText("-")
            overlay.text = f"no estimate: {out.message[:50]}"
        else:
            flag = "  BIMODAL" if pred.bimodal else ""
            lab["estimate"].setText(f"{pred.z_um:+.2f} um")
            lab["confidence"].setText(f"{pred.confidence:.2f}{flag}")
            lock = "" if math.isnan(out.locked_um) else f"   lock {out.locked_um:+.2f} um"
            af = "   AF on" if out.autofocus else ""
            overlay.text = f"z {pred.z_um:+.2f} um   conf {pred.confidence:.2f}{flag}{lock}{af}"
        overlay.visible = True

    # -- teardown --------------------------------------------------------------------------

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._close_watcher.watch(self)
        super().showEvent(event)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        """Closing the dock stops live view and releases the camera."""
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop live view, wait for the loop thread, close a microscope we created."""
        self.stop_live()
        self._teardown()
