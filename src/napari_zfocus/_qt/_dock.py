"""The one lifecycle every dock shares: its own workers, one idempotent teardown, no waits.

A dock (:class:`ZFocusDock`) starts every background job through :meth:`ZFocusDock.start_worker`.
The dock owns those workers and no others (it never waits on napari's global thread pool,
which other plugins share). It shuts down once, whichever comes first: the dock is closed,
the napari window is closed (docks get no ``closeEvent`` then: :class:`CloseWatcher`), or
the widget is destroyed. Shutting down never blocks the GUI thread: it asks workers and
loops to stop (cancel tokens, ``quit``) and returns; they finish on their own threads.

The teardown state lives in :class:`Lifecycle`, a plain object, so the ``destroyed``
signal can still run it after the C++ widget is gone (a slot on the widget itself could not).
"""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Callable
from typing import Any

from napari.qt.threading import FunctionWorker, GeneratorWorker, create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QWidget

from napari_zfocus.errors import ZFocusError


class CloseWatcher(QObject):
    """Calls ``on_close`` when the top-level window of a watched widget is closed.

    Docked widgets get no ``closeEvent`` of their own when the viewer closes, so workers
    would outlive the window. The window is held by a weak reference: a dock must never
    keep the main window (and its viewer) alive.
    """

    def __init__(self, on_close: Callable[[], None]) -> None:
        super().__init__()
        self._on_close = on_close
        self._window: weakref.ref[QWidget] | None = None

    def watch(self, widget: QWidget) -> None:
        """Watch ``widget``'s current top-level window (call from ``showEvent``)."""
        window = widget.window()
        watched = self._window() if self._window is not None else None
        if window is not widget and window is not watched:
            window.installEventFilter(self)
            self._window = weakref.ref(window)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt name
        if event.type() == QEvent.Type.Close:
            self._on_close()
        return False


class _CooperativeQuit:
    """Worker mixin: ``quit()`` calls ``cancel`` (when set) instead of aborting the job."""

    cancel: Callable[[], None] | None = None

    def quit(self) -> None:
        if self.cancel is not None:
            self.cancel()
        else:
            super().quit()  # type: ignore[misc]


class _CooperativeGenerator(_CooperativeQuit, GeneratorWorker):
    """A generator worker stopped by its own cancel token (see ``start_worker``)."""


class _CooperativeFunction(_CooperativeQuit, FunctionWorker):
    """A function worker stopped by its own cancel token (see ``start_worker``)."""


class Lifecycle:
    """Workers and clean-up callbacks of one dock; :meth:`close` runs once.

    Must not reference the dock widget: it runs from ``destroyed`` too.
    """

    def __init__(self) -> None:
        self.closed = False
        self.workers: set[Any] = set()
        self._on_close: list[Callable[[], None]] = []

    def add_cleanup(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` at :meth:`close` (stop loops, cancel tokens, unhook viewer events)."""
        self._on_close.append(callback)

    def guard(self, func: Callable[..., Any], *args: Any) -> Callable[..., None]:
        """A slot calling ``func(*args, *signal_args)`` unless the dock has closed meanwhile.

        Worker signals arrive through the event loop, possibly after the dock is gone.
        """

        def slot(*signal_args: Any) -> None:
            if not self.closed:
                func(*args, *signal_args)

        return slot

    def track(self, worker: Any) -> Any:
        """Own ``worker`` until it finishes (and quit it at :meth:`close`)."""
        self.workers.add(worker)
        worker.finished.connect(lambda: self.workers.discard(worker))
        return worker

    def close(self, *_: Any) -> None:
        """Clean up once: callbacks first (they cancel cooperatively), then quit workers."""
        if self.closed:
            return
        self.closed = True
        for callback in self._on_close:
            # One failing clean-up (a camera that errors on close) must not skip the rest.
            with contextlib.suppress(Exception):
                callback()
        for worker in list(self.workers):
            worker.quit()  # generator workers stop at their next yield


class ZFocusDock(QWidget):
    """Base of the napari-zfocus docks: a viewer, owned workers, one non-blocking teardown.

    Parameters
    ----------
    viewer
        The napari viewer the dock works on (may be None in tests without a viewer).
    parent
        Qt parent.
    """

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.lifecycle = Lifecycle()
        self._close_watcher = CloseWatcher(self.shutdown)
        self.destroyed.connect(self.lifecycle.close)

    @property
    def closed(self) -> bool:
        """True once the dock has shut down: late worker results are ignored."""
        return self.lifecycle.closed

    def start_worker(
        self,
        func: Callable[..., Any],
        *args: Any,
        returned: Callable[..., Any] | None = None,
        yielded: Callable[..., Any] | None = None,
        errored: Callable[[BaseException], Any] | None = None,
        finished: Callable[[], Any] | None = None,
        progress: dict[str, Any] | None = None,
        cancel: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``func(*args, **kwargs)`` in a napari thread worker owned by this dock.

        Callbacks run on the GUI thread and only while the dock is open. Errors go to
        ``errored`` (default: a napari notification). Workers get plain data, never widgets.
        ``cancel``: a cooperative stop (a cancel token's ``cancel``). Every request to quit
        the worker (this dock closing, napari's task manager when the window closes,
        napari at application exit) then calls it instead of dropping a generator at its
        next yield, so the job still runs its own ending (a training saves its checkpoint).
        """
        self._close_watcher.watch(self)  # docked by now: a button of the dock started this
        options: dict[str, Any] = {"_ignore_errors": True}
        if progress is not None:
            options["_progress"] = progress
        if cancel is not None:
            generator = inspect.isgeneratorfunction(func)
            options["_worker_class"] = _CooperativeGenerator if generator else _CooperativeFunction
        worker = create_worker(func, *args, **kwargs, **options)
        if cancel is not None:
            worker.cancel = cancel
        guard = self.lifecycle.guard
        if returned is not None:
            worker.returned.connect(guard(returned))
        if yielded is not None:
            worker.yielded.connect(guard(yielded))
        worker.errored.connect(guard(errored or self.show_failure))
        if finished is not None:
            worker.finished.connect(guard(finished))
        self.lifecycle.track(worker)
        worker.start()
        return worker

    def show_failure(self, exc: BaseException, what: str = "") -> None:
        """A job's error as a napari notification (a user error as is, a bug with its type)."""
        if isinstance(exc, ZFocusError):
            show_error(str(exc))
        else:
            show_error(f"{what or type(self).__name__} failed: {type(exc).__name__}: {exc}")

    def shutdown(self) -> None:
        """Stop this dock's jobs and unhook it from the viewer; idempotent, never blocks."""
        self.lifecycle.close()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        self._close_watcher.watch(self)
        super().showEvent(event)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        self.shutdown()
        super().closeEvent(event)
