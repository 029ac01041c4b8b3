"""Small compatibility helpers for the napari viewer API."""

from __future__ import annotations

from typing import Any


def text_overlay(viewer: Any) -> Any:
    """The viewer's text overlay (``viewer.canvas.overlays.text`` since napari 0.9)."""
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    overlay = getattr(overlays, "text", None)
    return overlay if overlay is not None else viewer.text_overlay


def camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9)."""
    scene = getattr(viewer, "scene", None)
    found = getattr(scene, "camera", None)
    return found if found is not None else viewer.camera
