"""Shared steps of the dock screenshot scripts: a viewer with the dock, Qt time, the PNG.

Used by screenshot_acquisition.py and screenshot_live.py (imported from this folder).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def open_dock(make_widget: Callable[[Any], Any], name: str) -> tuple[Any, Any]:
    """A shown 1600x1000 napari viewer with ``make_widget(viewer)`` docked on the right."""
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    widget = make_widget(viewer)
    viewer.window.add_dock_widget(widget, name=name, area="right")
    return viewer, widget


def run_for(seconds: float) -> None:
    """Keep the Qt event loop running for ``seconds``."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.005)


def save_screenshot(viewer: Any, default: Path) -> Path:
    """Write the whole window as a PNG: to the first argument, else to ``default``."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    return out
