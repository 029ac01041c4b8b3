"""Live autofocus dock: live view, z estimate overlay, focus lock and a drift trace.

A thin view over :mod:`napari_zfocus.live`. A :class:`~napari_zfocus.live.frame_loop.LiveLoop`
grabs and processes frames (estimate, decision, maybe a move) in a worker; the newest result
waits in a latest-only slot that a GUI timer polls, paced by a :class:`DisplayPacer`: stale
results are dropped, never queued. User changes go to the loop thread (:meth:`LiveLoop.submit`);
what :class:`LiveAutofocus` then announces (psygnal, from the loop thread) is queued for the
same timer. Models and microscopes load in workers; stopping never waits.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QWidget

from napari_zfocus._qt._dock import ZFocusDock
from napari_zfocus._qt._live_controls import LiveControls
from napari_zfocus._qt._live_display import LAYER_NAME
from napari_zfocus._qt._model_slot import ModelSlot, ModelSlotOwner
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.autofocus import LiveAutofocus, load_predictor
from napari_zfocus.live.display_pacer import DisplayPacer
from napari_zfocus.live.frame_loop import LiveLoop, LiveResult
from napari_zfocus.live.headless import DEMO_MODEL
from napari_zfocus.live.microscope_factory import (
    SIM_SPEED,
    as_microscope,
    close_after_loop,
    start_simulated_microscope,
)

if TYPE_CHECKING:
    import napari

__all__ = ["LAYER_NAME", "LiveAutofocusWidget"]

#: How often the display timer looks for a new frame (the pacer decides whether to show it).
POLL_INTERVAL_MS = 15


class LiveAutofocusWidget(ModelSlotOwner, ZFocusDock):
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
        Model file (loaded in a worker); default the bundled demo model when it exists.
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
        super().__init__(viewer, parent)
        self.max_fps = max_fps
        self.microscope: Any = as_microscope(microscope) if microscope is not None else None
        self.live: LiveAutofocus | None = None
        self.loop: LiveLoop | None = None
        self.worker: Any = None  # the live session's job: starting the microscope, or the loop
        self._start_pending = False  # Start pressed while the model loads
        self._messages: deque[tuple[str, str]] = deque()  # (kind, text) from the loop thread
        self._loops: list[LiveLoop] = []  # the latest loop, for teardown (not the widget)
        self._close_owned: Callable[[], None] | None = None
        self._closing = threading.Event()
        self.lifecycle.add_cleanup(self._closing.set)

        self.controls = LiveControls(self)
        self.controls.build()
        self.model_slot = ModelSlot(
            self, self.model_label, changed=self._on_model_changed,
            settled=self._on_model_settled, failed=self._on_model_failed,
        )
        self.pacer = DisplayPacer()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.timeout.connect(self._poll)
        if model_path is None and DEMO_MODEL.is_file():
            model_path = DEMO_MODEL
        if model_path is not None:
            self.load_model(model_path)
        self._update_state()

    # -- the readout's state, by its old names (scripts and benchmarks read them) ----
    last_output = property(lambda self: self.readout.last_output)
    last_stats = property(lambda self: self.readout.last_stats)
    _gui_updates = property(lambda self: self.readout.gui_updates)
    _gui_window = property(lambda self: self.readout.gui_window)

    # -- state ------------------------------------------------------------------------

    @property
    def is_live(self) -> bool:
        """True while the live loop runs (or is starting)."""
        return self.worker is not None or self._start_pending

    @property
    def stopping(self) -> bool:
        """Stop was pressed and the previous loop has not released the camera yet."""
        return not self.is_live and self.loop is not None and self.loop.running

    def _scope_text(self) -> str:
        if self.microscope is None:
            return "Simulated microscope (built on start)"
        return f"Microscope: {type(self.microscope).__name__}"

    def _update_state(self, *_: Any) -> None:
        """Enable what makes sense in the current state."""
        live = self.is_live
        ready = self.predictor is not None or self.model_loading
        self.start_button.setEnabled(live or (ready and not self.stopping))
        self.model_button.setEnabled(not live)
        self.mm_button.setEnabled(not live)
        self.lock_button.setEnabled(self.live is not None)
        self.controls.set_checked(self.start_button, live)
        self.start_button.setText("Stop live" if live else "Start live")

    # -- model and microscope ------------------------------------------------------------

    def load_model(self, path: str | Path) -> bool:
        """Load a model file in a worker; False if refused now (live view running).

        A file that cannot be loaded is reported (naming it) and the old model is kept.
        """
        if self.is_live:
            show_warning("Stop live view before changing the model.")
            return False
        path = Path(path)
        self.model_slot.load(load_predictor, path, name=path.name, what=str(path))
        self._update_state()
        return True

    def set_predictor(self, predictor: Any, description: str = "") -> None:
        """Use ``predictor`` (with a ``predict(image, pixel_size_um)``) from the next start.

        Replaces a model still loading (its result is then ignored).
        """
        if self.worker is not None:
            raise ZFocusError("stop live view before changing the model")
        self.model_slot.set(predictor, description)

    def _on_model_changed(self) -> None:
        self.live = None  # rebuilt with the new model on the next start
        self._update_state()

    def _on_model_settled(self) -> None:
        pending, self._start_pending = self._start_pending, False
        if pending and self.predictor is not None:
            self.start_live()  # Start was pressed while the model loaded
        self._update_state()

    def _on_model_failed(self, message: str) -> None:
        show_error(message)

    def set_microscope(self, microscope: Any, *, owned: bool = False) -> None:
        """Use another microscope (stops live view first); ``owned``: the dock closes it."""
        self.stop_live()
        if self._close_owned is not None:
            self._close_owned()  # the one we made, after its loop has let it go
            self._close_owned = None
        self.microscope = as_microscope(microscope)
        if owned:
            self._close_owned = close_after_loop(self.microscope, self._loops)
            self.lifecycle.add_cleanup(self._close_owned)
        self.live = None
        self.scope_label.setText(self._scope_text())
        self._update_state()

    # -- live loop ----------------------------------------------------------------------

    def start_live(self) -> None:
        """Start live view (after the model loads; builds the simulated microscope if needed)."""
        if self.is_live or self.closed:
            return
        if self.stopping:
            show_warning("Live view is still stopping; start it again in a moment.")
            self._update_state()
            return
        if self.predictor is None:
            if self.model_loading:
                self._start_pending = True
            else:
                show_error("Load a model first (Load model...).")
            self._update_state()
            return
        try:
            self.controller_settings()
        except ZFocusError as exc:
            show_error(f"Controller settings: {exc}")
            self._update_state()
            return
        if self.microscope is not None:
            self._start_loop()
            return
        self.scope_label.setText("Starting simulated microscope...")
        builder = self.worker = self.start_worker(
            start_simulated_microscope, self._closing,
            progress={"desc": "Starting simulated microscope"},
            returned=self._on_microscope_ready,
            errored=self._on_worker_error,
            finished=lambda: self._on_loop_finished(builder),
        )
        # Closed even when it arrives after the dock has gone (the slot above is skipped).
        builder.returned.connect(lambda scope, closing=self._closing: (
            scope.close() if closing.is_set() and scope is not None else None))
        self._update_state()

    def _on_microscope_ready(self, microscope: Any) -> None:
        worker, self.worker = self.worker, None
        self.set_microscope(microscope, owned=True)
        self.scope_label.setText(f"Simulated microscope (time x{SIM_SPEED:g})")
        if worker is not None:  # else Stop was pressed while the microscope was starting
            self._start_loop()

    def _start_loop(self) -> None:
        if self.live is None or self.live.microscope is not self.microscope:
            self.live = LiveAutofocus(self.predictor, self.microscope, self.controller_settings())
            self._listen(self.live)
            self.controls.set_checked(self.lock_button, False)  # a new controller: unlocked
        self.live.set_autofocus(self.autofocus_box.isChecked())
        loop = self.loop = LiveLoop(self.microscope, self.live, max_fps=self.max_fps)
        self._loops[:] = [loop]
        self.pacer.reset()
        self.readout.reset()
        loop.arm()  # commands sent before the thread starts are queued for it
        worker = self.worker = self.start_worker(
            loop.run, yielded=self.readout.show_stats, errored=self._on_worker_error,
            finished=lambda: self._on_loop_finished(worker),
            # Quitting must stop the loop, not drop its generator at a yield: the loop's
            # own ending closes the camera stream and runs the last commands.
            cancel=loop.stop,
        )
        self._timer.start()
        self._update_state()

    def _listen(self, live: LiveAutofocus) -> None:
        """Queue what ``live`` announces (from the loop thread) for the display timer."""
        messages = self._messages  # a deque: safe to append from any thread
        live.message.connect(lambda kind, text: messages.append((kind, text)))
        live.unlocked.connect(lambda: messages.append(("unlocked", "")))
        live.locked.connect(lambda z: messages.append(
            ("locked", f"Focus locked at estimate {z:+.2f} um")))

    def stop_live(self) -> None:
        """Stop live view; the loop ends (and releases the camera) in its own thread."""
        self._start_pending = False
        if self.loop is not None:
            self.loop.stop()
        self.worker = None  # its late 'finished' is told apart
        self._timer.stop()
        self._poll()  # show the very last frame and any pending message
        self._update_state()

    def _on_loop_finished(self, worker: Any) -> None:
        if worker is self.worker:
            self._timer.stop()
            self.worker = None
            self._poll()  # the last frame and any pending message
        else:  # a run stopped earlier (its last frame was shown then): messages only
            self._show_messages()
        self._update_state()  # Start is allowed again once the camera is released

    def _on_worker_error(self, exc: BaseException) -> None:
        show_error(str(exc) if isinstance(exc, ZFocusError) else f"Live autofocus stopped: {exc!r}")

    # -- commands to the loop thread --------------------------------------------------------

    def controller_settings(self) -> Any:
        """Controller settings from the fields (validated)."""
        return self.controls.settings()

    def _submit(self, command: Callable[[LiveAutofocus], Any]) -> None:
        """Run ``command(live)`` in the loop thread; a ZFocusError is shown to the user."""
        live = self.live
        if live is None:
            return
        if self.loop is not None:
            self.loop.submit(lambda: live.run_command(command))
        else:
            live.run_command(command)
        if not self.is_live:
            self._show_messages()

    def _on_settings_changed(self, *_: Any) -> None:
        try:
            settings = self.controller_settings()
        except ZFocusError as exc:
            show_error(f"Controller settings: {exc}")
            return
        self._submit(lambda live: live.set_settings(settings))

    def save_decision_log(self, path: str | Path) -> None:
        """Export the controller's decision log as CSV (in the loop thread when live)."""
        self._submit(lambda live: live.export_log(path))

    # -- display ------------------------------------------------------------------------------

    def _show_messages(self) -> None:
        while self._messages:
            kind, text = self._messages.popleft()
            if kind == "error":
                show_error(text)
            elif kind == "info":
                show_info(text)
            elif kind == "locked":
                self.controls.set_checked(self.lock_button, True)
                show_info(text)
            elif kind == "unlocked":
                self.controls.set_checked(self.lock_button, False)

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

    def _show(self, result: LiveResult) -> None:
        px = float(getattr(self.microscope, "pixel_size_um", 1.0) or 1.0)
        self.readout.show(result, px)

    # -- teardown --------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop live view and release what the dock made; returns at once.

        The loop stops after its current frame, in its thread; a microscope the dock made
        is closed there once its stream has ended.
        """
        self._timer.stop()
        super().shutdown()
