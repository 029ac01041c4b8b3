"""Helpers of the inspection dock's tests: open it on a model, wait for its workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import QThreadPool

from napari_zfocus._qt.inspection_widget import InspectionWidget


def idle() -> bool:
    """Whether no worker of Qt's global pool is running."""
    return QThreadPool.globalInstance().activeThreadCount() == 0


def loaded_dock(make_napari_viewer: Any, qtbot: Any, model: Path) -> InspectionWidget:
    """The inspection dock of a new viewer, once ``model`` is loaded."""
    widget = InspectionWidget(make_napari_viewer(), model_path=model)
    qtbot.waitUntil(lambda: widget.state.predictor is not None, timeout=30000)
    return widget
