"""The acquisition dock's core: where it comes from, the demo run, and what closing leaves.

* :func:`micromanager_core` finds napari-micromanager's core when napari-micromanager is
  in use (its window in this viewer, else the global ``CMMCorePlus`` with a camera).
* :func:`run_demo_job` is the demo acquisition's worker job (plain data in and out): a short
  multi-position time-lapse on the simulated plate, on its simulated clock.
* :class:`Leftovers` is what the dock leaves behind when it closes: it cancels an
  acquisition that runs with our autofocus, removes the autofocus once no acquisition
  runs (restoring the previous engine), then closes the simulated scope the dock owns.
  It holds no widget and never blocks: it acts on the core's ``sequenceFinished``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from typing import Any

from napari_zfocus.acquisition.settings import FocusRecord
from napari_zfocus.errors import ZFocusError

__all__ = ["DEMO_HOURS", "DEMO_INTERVAL_MIN", "Leftovers", "demo_sequence",
           "demo_summary", "drain", "micromanager_core", "prepare_simulation", "run_demo_job"]

#: The demo acquisition: a 2 h time-lapse of every simulated position in BF and FL.
DEMO_HOURS = 2.0
DEMO_INTERVAL_MIN = 15.0


def micromanager_core(viewer: Any) -> Any | None:
    """napari-micromanager's ``CMMCorePlus`` when napari-micromanager is in use, else None.

    In use: its main window is docked in ``viewer``, or (its window elsewhere) the global
    ``CMMCorePlus.instance()`` exists with a camera loaded. Nothing is imported or created
    when napari-micromanager was never loaded, and a zfocus simulation does not count.
    """
    if "napari_micromanager" not in sys.modules:  # napari imports a plugin when it is opened
        return None
    try:
        from napari_micromanager.main_window import MainWindow
    except ImportError:
        return None
    qt_window = getattr(getattr(viewer, "window", None), "_qt_window", None)
    if qt_window is not None:
        window = qt_window.findChild(MainWindow)
        if window is not None:
            return window.core
    # The singleton, without creating one (instance() would make a new core).
    from pymmcore_plus.core import _mmcore_plus

    from napari_zfocus.live.mmcore import CAMERA_LABEL

    ref = getattr(_mmcore_plus, "_instance", None)
    core = ref() if ref is not None else None
    if core is not None and core.getCameraDevice() not in ("", CAMERA_LABEL):
        return core
    return None


def prepare_simulation() -> None:
    """Worker job: import pymmcore-plus and the acquisition engine (seconds on 2 cores).

    The simulated core itself is built on the GUI thread: a core made in a worker thread
    would own Qt signal objects living in that thread.
    """
    from napari_zfocus.acquisition import autofocus, engine, simulated_scope  # noqa: F401


def demo_sequence(scope: Any) -> Any:
    """The demo's ``useq.MDASequence``: every position of ``scope``, BF + FL, 2 h."""
    from napari_zfocus.acquisition.simulated_run import SimulatedAcquisition

    request = SimulatedAcquisition(
        positions=int(scope.settings.positions), hours=DEMO_HOURS,
        interval_min=DEMO_INTERVAL_MIN,
    )
    return request.sequence(scope.position_list())


def demo_summary(records: list[FocusRecord], frames: int, cancelled: bool) -> str:
    """One line about a demo run: frames, refocuses and the true focus error after them."""
    errors = [abs(r.true_error_um) for r in records if math.isfinite(r.true_error_um)]
    text = (f"Demo acquisition {'cancelled' if cancelled else 'finished'}: {frames} frames, "
            f"{len(records)} refocuses")
    if errors:
        text += f"; focus error after refocus: mean {sum(errors) / len(errors):.2f} um"
    return text


def run_demo_job(core: Any, scope: Any, sequence: Any, stop: threading.Event) -> bool:
    """Run ``sequence`` on the simulated ``scope`` (worker job); True when it was cancelled.

    The events wait on the scope's simulated clock, so 2 h take seconds; ``stop`` (set by
    the dock's Cancel or its closing) is also honoured before the run starts.
    """
    from napari_zfocus.acquisition.simulated_scope import simulated_waits

    if stop.is_set():
        return True
    with simulated_waits(scope):
        core.mda.run(sequence)
    return stop.is_set()


class Leftovers:
    """What the dock leaves behind; :meth:`release` once it closes (see the module docs).

    Attributes
    ----------
    core, autofocus, scope
        The dock's core, its :class:`AcquisitionAutofocus` (or None) and the simulated
        scope it owns (or None). The dock keeps them current.
    demo_running
        True while the dock's demo worker has not finished.
    released
        Set once the autofocus was removed and the scope closed.
    """

    def __init__(self) -> None:
        self.core: Any = None
        self.autofocus: Any = None
        self.scope: Any = None
        self.demo_running = False
        self.released = threading.Event()
        self._closing = False
        self._lock = threading.Lock()
        self._hooked: Any = None

    def release(self) -> None:
        """Cancel what runs with our autofocus, then clean up when idle (never waits)."""
        self._closing = True
        core = self.core
        if core is None:
            self._finish()
            return
        # Hook first: an acquisition that ends right now still reaches _try_finish.
        events = core.mda.events
        events.sequenceFinished.connect(self._try_finish)
        events.sequenceStarted.connect(self._cancel_late)
        self._hooked = events
        if self._ours() and core.mda.is_running():
            core.mda.cancel()  # someone else's acquisition without our autofocus runs on
        self._try_finish()

    def _ours(self) -> bool:
        """True when an acquisition now would run our demo or our autofocus."""
        return self.demo_running or (self.autofocus is not None and self.autofocus.installed)

    def demo_finished(self) -> None:
        """The demo worker is done (connected even after the dock has gone)."""
        self.demo_running = False
        if self._closing:
            self._try_finish()

    def _cancel_late(self, *_: Any) -> None:
        # A run that started after the dock closed (the demo worker was about to start).
        if self.core is not None and not self.released.is_set() and self._ours():
            self.core.mda.cancel()

    def _try_finish(self, *_: Any) -> None:
        core = self.core
        if self.demo_running or (core is not None and core.mda.is_running()):
            return  # sequenceFinished or the demo worker calls again
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self.released.is_set():
                return
            self.released.set()
        if self._hooked is not None:
            for signal, slot in ((self._hooked.sequenceFinished, self._try_finish),
                                 (self._hooked.sequenceStarted, self._cancel_late)):
                with contextlib.suppress(Exception):
                    signal.disconnect(slot)
            self._hooked = None
        if self.autofocus is not None:
            with contextlib.suppress(ZFocusError):
                self.autofocus.remove()
        if self.scope is not None:
            self.scope.close()
        # Drop the core: one whose devices were unloaded must not outlive the interpreter.
        self.core = self.autofocus = self.scope = None


def drain(queue: Any, limit: int = 10_000) -> list[FocusRecord]:
    """Pop up to ``limit`` records from a deque filled by another thread (oldest first)."""
    out: list[FocusRecord] = []
    while queue and len(out) < limit:
        out.append(queue.popleft())
    return out

