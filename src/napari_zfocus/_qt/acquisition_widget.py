"""Acquisition dock: the one-frame CNN autofocus inside pymmcore-plus MDA acquisitions.

A thin view over :class:`~napari_zfocus.acquisition.autofocus.AcquisitionAutofocus`: it
installs the autofocus engine on a core (one given, napari-micromanager's, or a simulated
plate the dock builds and owns), so every acquisition of that core refocuses before each
position and time point (napari-micromanager's MDA widget included). Refocus records
arrive on the acquisition thread: they are queued and drained by a GUI timer into
per-position traces and a last-decision table. Models load in workers; the demo
acquisition runs in a worker on the simulated clock; closing never waits: an acquisition
that runs with our autofocus is cancelled and the autofocus removed when it has ended.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QWidget

from napari_zfocus._qt._acquisition_controls import AcquisitionControls
from napari_zfocus._qt._acquisition_core import (
    Leftovers,
    demo_sequence,
    demo_summary,
    drain,
    micromanager_core,
    prepare_simulation,
    run_demo_job,
)
from napari_zfocus._qt._acquisition_frames import FrameCounter, FrameLayers
from napari_zfocus._qt._dock import ZFocusDock
from napari_zfocus._qt._model_slot import ModelSlot, ModelSlotOwner
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.headless import DEMO_MODEL, check_pixel_size_fits, load_predictor

if TYPE_CHECKING:
    import napari

    from napari_zfocus.acquisition.simulated_scope import SimulatedScopeSettings

__all__ = ["AcquisitionAutofocusWidget"]

#: How often the GUI drains the refocus queue and refreshes the buttons (ms).
POLL_INTERVAL_MS = 100


def _load_named(source: str | None, name: str) -> tuple[Any, str]:
    """The model file ``source`` (None: the demo model), described by ``name`` (a worker job)."""
    return load_predictor(source), name


class AcquisitionAutofocusWidget(ModelSlotOwner, ZFocusDock):
    """Install the acquisition autofocus on a core and watch its refocuses.

    Parameters
    ----------
    viewer
        The napari viewer (injected by npe2); the simulated plate's frames appear in it as
        layers.
    parent
        Qt parent.
    core
        The ``CMMCorePlus`` to drive (not closed by the dock). None: napari-micromanager's
        core when napari-micromanager is in use, else a simulated plate
        (:class:`~napari_zfocus.acquisition.simulated_scope.SimulatedScope`) that the dock
        builds, owns and closes.
    model_path
        Model file (loaded in a worker); default the demo model shipped with zfocus.
    predictor
        A model object (``predict(image, pixel_size_um)``) to use instead of loading one.
    simulation
        Settings of the simulated plate (default: 4 positions, the bright-field simulator).
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        parent: QWidget | None = None,
        *,
        core: Any = None,
        model_path: str | Path | None = None,
        predictor: Any = None,
        simulation: SimulatedScopeSettings | None = None,
    ) -> None:
        super().__init__(viewer, parent)
        self.core: Any = None
        self.scope: Any = None  # the simulated plate this dock owns, if any
        self.autofocus: Any = None  # AcquisitionAutofocus, made on install
        self.model_source = ""  # the model field's text last loaded ("": the demo model)
        self.demo_worker: Any = None
        self._pending: str | None = None  # "install" or "demo", waiting for the model
        self._demo_stop = threading.Event()
        self._records: deque[Any] = deque()  # FocusRecords, appended by the acquisition thread
        self._frames = FrameCounter()
        self.frame_layers: FrameLayers | None = None  # the own plate's frames, as layers
        self.leftovers = Leftovers()
        self.lifecycle.add_cleanup(self.leftovers.release)

        self.controls = AcquisitionControls(self)
        self.controls.build()
        self.model_slot = ModelSlot(
            self, self.model_label, changed=self._update_state, settled=self._on_model_settled,
            failed=self._on_model_failed, pixel_size=True,
        )
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.timeout.connect(self._poll)
        self._choose_core(core, simulation)
        if predictor is not None:
            self.set_predictor(predictor)
        elif model_path is not None:
            self.model_edit.setText(str(model_path))
            self.load_model(model_path)
        elif DEMO_MODEL.is_file():
            self.load_model(None)  # the field stays empty: "demo model"
        self._timer.start()
        self._update_state()

    # -- the core ----------------------------------------------------------------------

    def _choose_core(self, core: Any, simulation: SimulatedScopeSettings | None) -> None:
        if core is not None:
            self._use_core(core, f"given core ({type(core).__name__})", camera=True)
            return
        found = micromanager_core(self.viewer)
        if found is not None:
            self._use_core(found, "napari-micromanager's core", camera=True)
            return
        self.core_label.setText("Simulated plate: starting\u2026")
        self.start_worker(
            prepare_simulation, progress={"desc": "Preparing the simulated plate"},
            returned=lambda _: self._build_scope(simulation),
            errored=self._on_scope_failed,
        )

    def _build_scope(self, simulation: SimulatedScopeSettings | None) -> None:
        from napari_zfocus.acquisition.simulated_scope import SimulatedScope

        try:
            scope = SimulatedScope(simulation)
        except ZFocusError as exc:
            self._on_scope_failed(exc)
            return
        self.scope = self.leftovers.scope = scope
        self.frame_layers = FrameLayers(self.viewer, float(scope.settings.pixel_size_um))
        n = int(scope.settings.positions)
        self._use_core(scope.core, f"simulated plate: {n} positions, simulated clock")

    def _on_scope_failed(self, exc: BaseException) -> None:
        self.core_label.setText("Simulated plate unavailable")
        if isinstance(exc, ImportError):
            show_error("Acquisition autofocus needs pymmcore-plus: pip install pymmcore-plus")
        else:
            self.show_failure(exc, "Simulated plate")

    def _use_core(self, core: Any, description: str, *, camera: bool = False) -> None:
        """Drive ``core``; ``camera``: name its camera after ``description``."""
        self.core = self.leftovers.core = core
        if camera:
            description += f"; camera {core.getCameraDevice() or 'none'}"
        self.core_label.setText(description)
        self.controls.fill_channels(core)
        self.lifecycle.add_cleanup(self._frames.connect(core))
        self._update_state()

    # -- the model ---------------------------------------------------------------------

    def load_model(self, path: str | Path | None) -> bool:
        """Load a model file (None: the demo model) in a worker; False if refused now.

        A file that cannot be loaded is reported (naming it) and the old model is kept.
        """
        if self.autofocus is not None and self.autofocus.installed:
            show_warning("Remove the autofocus before changing the model.")
            return False
        self.model_source = str(path) if path else ""
        name = Path(path).name if path else "demo model"
        self.model_slot.load(_load_named, self.model_source or None, name, name=name, what=name)
        self._update_state()
        return True

    def set_predictor(self, predictor: Any, description: str = "") -> None:
        """Use ``predictor`` (with a ``predict(image, pixel_size_um)``) from the next install.

        Replaces a model still loading (its result is then ignored).
        """
        if self.autofocus is not None and self.autofocus.installed:
            raise ZFocusError("autofocus: remove it before changing the model")
        self.model_slot.set(predictor, description)

    def _on_model_settled(self) -> None:
        self._run_pending()
        self._update_state()

    def _on_model_failed(self, message: str) -> None:
        show_error(message)

    def _run_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None or self.predictor is None:
            return
        if pending == "demo":
            self.run_demo()
        else:
            self.install()

    # -- install and remove ----------------------------------------------------------------

    @property
    def installed(self) -> bool:
        """True while our autofocus engine is the core's MDA engine."""
        return self.autofocus is not None and self.autofocus.installed

    def _running(self) -> bool:
        return self.core is not None and bool(self.core.mda.is_running())

    def install(self, *_: Any, then: str = "install") -> bool:
        """Install the autofocus with the form's settings; False when refused or deferred."""
        if self.closed or self.core is None:
            show_warning("The microscope core is not ready yet.")
            return False
        if self.installed:
            return True
        if self._running():
            show_error("Autofocus: cannot install while an acquisition is running; "
                       "install it before the next one.")
            return False
        try:
            settings = self.controls.settings()
        except ZFocusError as exc:
            show_error(f"Autofocus settings: {exc}")
            return False
        if settings.method == "zfocus" and self.predictor is None:
            if self.model_worker is not None:
                self._pending = then  # done when the model has loaded
                self._update_state()
            else:
                show_error("Load a model first (model field), or choose the scan method.")
            return False
        from napari_zfocus.acquisition.autofocus import AcquisitionAutofocus

        try:
            if settings.method == "zfocus":
                px = float(self.core.getPixelSizeUm() or 0.0)
                if px > 0:  # uncalibrated cores report 0: nothing to check against
                    check_pixel_size_fits(self.predictor, px)
            autofocus = AcquisitionAutofocus(self.core, self.predictor, settings,
                                             **self._simulation_hooks())
            # A deque's append is safe from the acquisition thread (psygnal cannot read
            # the signature of a builtin: no argument check).
            autofocus.refocused.connect(self._records.append, check_nargs=False)
            autofocus.install()
        except ZFocusError as exc:
            show_error(str(exc))
            return False
        self.autofocus = self.leftovers.autofocus = autofocus
        self._update_state()
        return True

    def _simulation_hooks(self) -> dict[str, Any]:
        """On the dock's simulated plate: records carry the true error and simulated time."""
        scope = self.scope
        if scope is None:
            return {}
        return {"true_focus_um": lambda p: scope.focus_z_um(int(p or 0)),
                "clock": scope.clock.now}

    def remove(self, *_: Any) -> bool:
        """Give the core its previous engine back; refused while an acquisition runs."""
        if self.autofocus is None:
            return True
        try:
            self.autofocus.remove()
        except ZFocusError as exc:
            show_error(f"{exc}; cancel it or wait for its end.")
            return False
        finally:
            self._update_state()
        return True

    # -- the demo acquisition ----------------------------------------------------------------

    def run_demo(self, *_: Any) -> bool:
        """Run a short simulated time-lapse with the autofocus in a worker (simulated core)."""
        scope, core = self.scope, self.core
        if scope is None or core is None:
            show_warning("The demo acquisition runs on the dock's simulated plate only.")
            return False
        if self.demo_worker is not None or self._running():
            show_warning("An acquisition is already running.")
            return False
        if not self.install(then="demo"):
            return False
        stop = self._demo_stop = threading.Event()
        self.view.clear()
        self.leftovers.demo_running = True

        def cancel() -> None:  # no widget here: it may run after the dock has gone
            stop.set()
            core.mda.cancel()

        worker = self.demo_worker = self.start_worker(
            run_demo_job, core, scope, demo_sequence(scope), stop,
            progress={"desc": "Demo acquisition"},
            returned=self._on_demo_done,
            finished=lambda: self._on_demo_finished(worker),
            cancel=cancel,
        )
        worker.finished.connect(self.leftovers.demo_finished)  # also after the dock closed
        self._update_state()
        return True

    def cancel_demo(self, *_: Any) -> None:
        """Cancel the demo acquisition (it ends after its current event)."""
        if self.demo_worker is not None:
            self._demo_stop.set()
            self.core.mda.cancel()
            self._update_state()

    def _on_demo_done(self, cancelled: bool) -> None:
        self._poll()  # the last records first
        show_info(demo_summary(self.view.records, self._frames.frames, cancelled))

    def _on_demo_finished(self, worker: Any) -> None:
        if worker is self.demo_worker:
            self.demo_worker = None
        self._poll()
        if self.frame_layers is not None:
            self.frame_layers.update(self._frames, force=True)  # the very last frames
        self.view.repaint_now()

    # -- display -------------------------------------------------------------------------------

    def _poll(self) -> None:
        """Timer tick: show the queued refocus records; refresh the buttons."""
        records = drain(self._records)
        if records:
            self.view.add(records)
        if self.frame_layers is not None:
            self.frame_layers.update(self._frames)
        self._update_state()

    def _update_state(self, *_: Any) -> None:
        """Enable what makes sense now (the controls apply only what changed)."""
        self.controls.show_state(
            ready=self.core is not None and not self.closed, installed=self.installed,
            running=self._running(), demo=self.demo_worker is not None,
            simulated=self.scope is not None, frames=self._frames.frames,
            settings=self.autofocus.settings if self.installed else None,
            waiting=self._pending is not None,
        )

    # -- teardown -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the timer and leave the core as it was; returns at once.

        An acquisition running with our autofocus (or the demo) is cancelled; the
        autofocus is removed once it has ended, then the simulated plate is closed.
        """
        self._timer.stop()
        super().shutdown()
        # The leftovers hold what is still needed; the widget drops the core.
        self.core = self.scope = self.autofocus = None
