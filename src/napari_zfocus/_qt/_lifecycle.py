"""Shut a dock widget down when napari's main window closes."""

from __future__ import annotations

import weakref
from collections.abc import Callable

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QWidget


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
