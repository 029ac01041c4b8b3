"""The inspection dock's "Image" tab: predict the displayed slice, compute a focus map.

A view over :class:`~napari_zfocus.inspection.inspection_state.InspectionState`: buttons call the
state's rules and start jobs of :mod:`napari_zfocus.inspection.jobs` through the dock;
the state's signals bring the results back, and only then (on the GUI thread) are layers
and labels touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_zfocus._qt._canvas import PlotCanvas, SoftmaxBars
from napari_zfocus._qt._forms import float_spin
from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.display import (
    displayed_plane,
    focus_map_summary,
    focus_map_transform,
    prediction_texts,
    tile_index,
    tile_text,
)
from napari_zfocus.inspection.inspection_state import Controls, MapGeometry
from napari_zfocus.inspection.jobs import focus_map_job, predict_job

if TYPE_CHECKING:
    from napari_zfocus._qt.inspection_widget import InspectionWidget

Z_SUFFIX = " focus z"
CONF_SUFFIX = " confidence"
#: The values shown for a prediction: key of prediction_texts -> label.
_VALUES = (("z", "z (expected)"), ("argmax", "z (argmax bin)"), ("confidence", "confidence"),
           ("bimodal", "bimodal"))


class ImageTab(QWidget):
    """Slice prediction (with a softmax bar chart) and tiled focus map of the chosen layer.

    Parameters
    ----------
    dock
        The inspection dock: its state, viewer, chosen layer and workers.
    """

    def __init__(self, dock: InspectionWidget) -> None:
        super().__init__()
        self.dock = dock
        self.state = dock.state
        self._map_layers: tuple[Any, Any] | None = None
        self._map_pbar: Any = None
        self._build_ui()
        self.state.prediction_changed.connect(self._show_prediction)
        self.state.focus_map_changed.connect(self._add_map_layers)

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.addRow("image layer", self.dock.layer_combo)
        form.addRow("pixel size", self.dock.pixel_size)
        layout.addLayout(form)
        row = QHBoxLayout()
        self.predict_button = QPushButton("Predict slice")
        self.predict_button.clicked.connect(self.predict_current)
        self.follow_box = QCheckBox("follow z slider")
        self.follow_box.toggled.connect(lambda on: on and self.predict_current())
        row.addWidget(self.predict_button)
        row.addWidget(self.follow_box)
        layout.addLayout(row)
        grid = QGridLayout()
        self.values: dict[str, QLabel] = {}
        for i, (key, text) in enumerate(_VALUES):
            self.values[key] = QLabel("-")
            grid.addWidget(QLabel(text), i // 2, 2 * (i % 2))
            grid.addWidget(self.values[key], i // 2, 2 * (i % 2) + 1)
        layout.addLayout(grid)
        self.softmax_canvas = PlotCanvas(140)
        self.softmax = SoftmaxBars(self.softmax_canvas)
        layout.addWidget(self.softmax_canvas)
        layout.addWidget(self._build_map_box())
        layout.addStretch(1)

    def _build_map_box(self) -> QGroupBox:
        tiles = QGroupBox("Focus map (tiled)")
        form = QFormLayout(tiles)
        self.tile_um = float_spin(0.0, 10000.0, 0.0, step=1.0, suffix=" um", special="model field")
        self.stride_um = float_spin(0.0, 10000.0, 0.0, step=1.0, suffix=" um", special="= tile")
        form.addRow("tile", self.tile_um)
        form.addRow("stride", self.stride_um)
        row = QHBoxLayout()
        self.map_button = QPushButton("Compute focus map")
        self.map_button.clicked.connect(self.compute_focus_map)
        self.map_cancel = QPushButton("Cancel")
        self.map_cancel.clicked.connect(self.state.cancel_focus_map)
        row.addWidget(self.map_button)
        row.addWidget(self.map_cancel)
        form.addRow(row)
        self.tile_label = QLabel("hover a tile to see its softmax")
        form.addRow(self.tile_label)
        return tiles

    def show_controls(self, controls: Controls) -> None:
        """Enable what may run now."""
        self.predict_button.setEnabled(controls.predict)
        self.map_button.setEnabled(controls.focus_map)
        self.map_cancel.setEnabled(controls.cancel_focus_map)

    def _plane(self) -> tuple[Any, float, Any] | None:
        """(plane, pixel size, layer) of the displayed slice, or None after notifying."""
        layer = self.dock.current_layer()
        try:
            self.state.check_image_tools()
            if layer is None:
                raise ZFocusError("Add or choose an Image layer to inspect.")
        except ZFocusError as exc:
            self.dock.show_failure(exc)
            return None
        try:
            data_point = layer.world_to_data(self.dock.viewer.dims.point)
            plane = displayed_plane(layer.data, data_point, rgb=bool(getattr(layer, "rgb", False)))
        except ZFocusError as exc:
            self.dock.show_failure(ZFocusError(f"{layer.name}: {exc}"))
            return None
        px, warning = self.state.pixel_size_for_prediction()
        if warning:
            show_warning(warning)
        return plane, px, layer

    # -- single prediction ----------------------------------------------------------------

    def predict_current(self) -> None:
        """Predict z for the displayed slice of the chosen layer (coalesced, in a worker)."""
        if not self.state.request_prediction():
            return
        got = self._plane()
        if got is None:
            return
        plane, px, _ = got
        self.state.prediction_started()
        self.dock.start_worker(
            predict_job, self.state.predictor, plane, px, returned=self.state.set_prediction,
            errored=self.dock.failed, finished=self._prediction_finished,
        )

    def _prediction_finished(self) -> None:
        if self.state.prediction_finished():
            self.predict_current()

    def on_step(self, *_: Any) -> None:
        """The z slider moved: predict again when following it."""
        following = self.follow_box.isChecked() and self.state.predictor is not None
        if following and self.dock.current_layer() is not None:
            self.predict_current()

    def _show_prediction(self, pred: Any) -> None:
        for key, text in prediction_texts(pred).items():
            self.values[key].setText(text)
        self.softmax.ax.set_title("softmax of the displayed slice", fontsize=9)
        self.softmax.set(pred.softmax, pred.bin_centres_um, pred.z_um)
        self.softmax_canvas.draw()

    # -- focus map ------------------------------------------------------------------------

    def compute_focus_map(self) -> None:
        """Tiled prediction over the displayed slice (in a worker with progress and cancel)."""
        cancel = self.state.start_focus_map()
        if cancel is None:
            return
        got = self._plane()
        if got is None:
            self.state.focus_map_finished()
            return
        plane, px, layer = got
        geometry = MapGeometry(
            layer.name,
            (float(layer.scale[-2]), float(layer.scale[-1])),
            (float(layer.translate[-2]), float(layer.translate[-1])),
        )
        worker = self.dock.start_worker(
            focus_map_job, self.state.predictor, plane, px, self.tile_um.value() or None,
            self.stride_um.value() or None, cancel,
            progress={"desc": "Focus map", "total": 0}, cancel=cancel.set,
            yielded=self._map_progress, returned=lambda fmap: self._map_done(fmap, geometry),
            errored=self.dock.failed, finished=self.state.focus_map_finished,
        )
        # Yields arrive through the event loop, so after this line.
        self._map_pbar = getattr(worker, "pbar", None)

    def _map_progress(self, done_total: tuple[int, int]) -> None:
        pbar = self._map_pbar
        if pbar is not None:
            pbar.total, pbar.n = done_total[1], done_total[0]
            pbar.refresh()

    def _map_done(self, fmap: Any, geometry: MapGeometry) -> None:
        if fmap is None:
            show_info("Focus map cancelled.")
            return
        self.state.set_focus_map(fmap, geometry)

    def _add_map_layers(self, fmap: Any, geometry: MapGeometry) -> None:
        """Show a focus map as z and confidence layers over its image (GUI thread)."""
        viewer, name = self.dock.viewer, geometry.layer_name
        scale, translate = focus_map_transform(fmap, geometry.scale_yx, geometry.translate_yx)
        zlim = float(max(np.nanmax(np.abs(fmap.z_um)), self.state.predictor.config.bin_um))
        # Replace maps of the same image rather than piling up layers.
        for suffix in (Z_SUFFIX, CONF_SUFFIX):
            if name + suffix in viewer.layers:
                viewer.layers.remove(name + suffix)
        meta = {"zfocus_focus_map": True}
        conf = viewer.add_image(
            fmap.confidence.astype(np.float32), name=name + CONF_SUFFIX, scale=scale,
            translate=translate, colormap="viridis", contrast_limits=(0.0, 1.0), opacity=0.6,
            visible=False, metadata=meta,
        )
        zmap = viewer.add_image(
            fmap.z_um.astype(np.float32), name=name + Z_SUFFIX, scale=scale, translate=translate,
            colormap="PiYG", contrast_limits=(-zlim, zlim), opacity=0.5, metadata=dict(meta),
        )
        zmap.colorbar.visible = True  # the z scale in um, top right of the canvas
        self._map_layers = (zmap, conf)
        # Keep the image chosen: the new layers became the active ones.
        self.dock.layer_combo.setCurrentText(name)
        self.tile_label.setText(focus_map_summary(fmap))

    def on_mouse_move(self, viewer: Any, event: Any) -> None:
        """Show the softmax of the focus-map tile under the cursor."""
        if self._map_layers is None or self.state.focus_map is None:
            return
        zmap = self._map_layers[0]
        if zmap not in viewer.layers:
            self._map_layers = None
            return
        self.show_tile_at(zmap.world_to_data(event.position))

    def show_tile_at(self, data_coords: Any) -> tuple[int, int] | None:
        """Show the softmax of the tile at focus-map data coordinates; return its index."""
        fmap = self.state.focus_map
        idx = None if fmap is None else tile_index(data_coords, fmap.shape)
        if idx is None:
            return None
        i, j = idx
        self.softmax.ax.set_title(f"softmax of tile ({i}, {j})", fontsize=9)
        self.softmax.set(fmap.softmax[i, j], fmap.bin_centres_um, float(fmap.z_um[i, j]))
        self.softmax_canvas.request_draw(0.05)
        self.tile_label.setText(tile_text(fmap, i, j))
        return idx
