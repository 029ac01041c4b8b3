"""The one Image layer the annotation dock shows its current stack in, and the z slider.

Switching stacks replaces the layer's data (only the shown stack is open; dask reads one
slice at a time). The user's zoom is kept between stacks of the same shape, and the mouse
wheel may step through z instead of zooming (the camera's zoom is given back at close).
"""

from __future__ import annotations

from typing import Any

import numpy as np

LAYER_NAME = "zfocus annotation"


class StackLayer:
    """The annotation layer of a viewer (created on the first :meth:`show`).

    Parameters
    ----------
    viewer
        The napari viewer (or npe2's public-only proxy of it).
    """

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.layer: Any = None
        self._shown_shape: tuple[int, ...] | None = None
        self._slice_at_open: int | None = None  # jump to a late suggestion only if unmoved
        # napari >= 0.9 moved the camera to viewer.scene (viewer.camera is deprecated).
        scene = getattr(viewer, "scene", None)
        self._camera = scene.camera if scene is not None else viewer.camera
        self._zoom_before = self._camera.mouse_zoom

    def show(self, stack: Any, middle: np.ndarray, z_step_um: float, pixel_size_um: float) -> None:
        """Show ``stack`` (a ZStack) with contrast from its ``middle`` slice."""
        scale = (z_step_um, pixel_size_um, pixel_size_um)
        # Contrast from one slice: napari would otherwise estimate it from the whole stack.
        lo, hi = (float(v) for v in np.percentile(middle, (0.5, 99.5)))
        hi = hi if hi > lo else lo + 1.0
        if self.layer is None or self.layer not in self.viewer.layers:
            self.layer = self.viewer.add_image(
                stack.data, name=LAYER_NAME, scale=scale, contrast_limits=(lo, hi)
            )
        else:
            self.layer.data = stack.data
            self.layer.scale = scale
            self.layer.contrast_limits_range = (
                min(lo, float(middle.min())), max(hi, float(middle.max()))
            )
            self.layer.contrast_limits = (lo, hi)
        if self._shown_shape != stack.shape:  # keep the user's zoom between same-size stacks
            self.viewer.reset_view()
            self._shown_shape = stack.shape

    def current_slice(self) -> int:
        """Index of the slice shown (0 without a stack)."""
        if self.layer is None or self.layer not in self.viewer.layers:
            return 0
        z = float(self.layer.world_to_data(self.viewer.dims.point)[0])
        return int(np.clip(round(z), 0, self.layer.data.shape[0] - 1))

    def go_to_slice(self, index: int) -> None:
        """Move the z slider to slice ``index``."""
        if self.layer is None:
            return
        axis = self.viewer.dims.ndim - 3
        world = float(self.layer.data_to_world([index, 0, 0])[0])
        self.viewer.dims.set_point(axis, world)

    def open_at(self, index: int) -> None:
        """Go to ``index`` of a stack just shown (remembered: see :meth:`jump_if_unmoved`)."""
        self.go_to_slice(index)
        self._slice_at_open = self.current_slice()

    def jump_if_unmoved(self, index: int, wanted: bool = True) -> None:
        """Go to a late suggestion unless the user moved the slider since the stack opened."""
        if wanted and self.current_slice() == self._slice_at_open:
            self.open_at(index)

    def set_scale(self, z_step_um: float, pixel_size_um: float, index: int) -> None:
        """New physical sizes, staying on slice ``index``."""
        if self.layer is not None:
            self.layer.scale = (z_step_um, pixel_size_um, pixel_size_um)
            self.go_to_slice(index)

    def rename(self, name: str) -> None:
        if self.layer is not None and self.layer.name != name:
            self.layer.name = name

    def set_wheel_scrolls_z(self, on: bool) -> None:
        """With the wheel stepping through z, zooming stays on the toolbar / pinch."""
        self._camera.mouse_zoom = self._zoom_before if not on else False

    def on_wheel(self, event: Any) -> None:
        """One slice per wheel step (napari's own Ctrl+wheel and Alt+wheel are left alone)."""
        if self.layer is None or event.modifiers:
            return
        delta = float(np.sign(event.delta[1]))
        if delta:
            last = self.layer.data.shape[0] - 1
            self.go_to_slice(int(np.clip(self.current_slice() + delta, 0, last)))
