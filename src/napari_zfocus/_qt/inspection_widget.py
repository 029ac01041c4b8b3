"""Inspection dock: what does the model say about this image, this field, this dataset?

Five tools over one loaded model:

* **Slice** -- predicted z, confidence, bimodal flag and the softmax bar chart for the
  displayed slice of any Image layer (optionally following the z slider);
* **Focus map** -- tiled prediction over the whole field, shown as colour-mapped z and
  confidence layers in the image's world coordinates; hovering a tile shows its softmax;
* **Evaluate** -- a dataset run with progress and cancel: confusion heatmap, error plots,
  metrics beside the baselines, PNG/CSV export;
* **Rescale** -- after a change of condenser or wavelength, the model's distance scale
  measured on unannotated stacks of the new setting, written to a new model file;
* **Calibrate** -- the confidence and out-of-distribution check refitted on annotated
  held-out stacks of the model's world, written to a new model file.

The dock is a view over :class:`~napari_zfocus.inspection.inspection_state.InspectionState`
(what it knows and the rules of its jobs). The tabs live in :mod:`._inspection_image`,
:mod:`._inspection_eval`, :mod:`._inspection_rescale` and :mod:`._inspection_calibrate`;
this module holds the model box, the layer choice and the hooks into the viewer. Every job
(the model file too) runs in a worker of the dock, on plain data; layers are touched on the
GUI thread only.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from napari_zfocus._qt._dock import ZFocusDock
from napari_zfocus._qt._forms import float_spin
from napari_zfocus._qt._inspection_calibrate import CalibrateTab
from napari_zfocus._qt._inspection_eval import EvaluationTab
from napari_zfocus._qt._inspection_image import CONF_SUFFIX, Z_SUFFIX, ImageTab
from napari_zfocus._qt._inspection_rescale import RescaleTab
from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.display import pixel_size_from_layer
from napari_zfocus.inspection.inspection_state import InspectionState
from napari_zfocus.inspection.jobs import LoadedModel, load_model_job

if TYPE_CHECKING:
    import napari

__all__ = ["CONF_SUFFIX", "Z_SUFFIX", "InspectionWidget"]


class InspectionWidget(ZFocusDock):
    """Inspect a z-position model on images, fields and datasets.

    Parameters
    ----------
    viewer
        The napari viewer (injected by npe2).
    parent
        Qt parent.
    model_path
        Model file to load at once (in a worker, optional).
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        parent: QWidget | None = None,
        *,
        model_path: str | Path | None = None,
    ) -> None:
        super().__init__(viewer, parent)
        self.state = InspectionState()
        self._build_ui()
        self.state.model_changed.connect(self._show_model)
        self.state.layer_changed.connect(self._show_layer)
        self.state.jobs_changed.connect(self._update_controls)
        self._hook_viewer()
        self.lifecycle.add_cleanup(self.state.close)
        self._refresh_layers()
        if model_path is not None:
            self.load_model(model_path)
        self._update_controls()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        self.setMinimumWidth(460)  # room for the metrics table and the plots
        model_box = QGroupBox("Model")
        mlayout = QVBoxLayout(model_box)
        row = QHBoxLayout()
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("model file (.zfm)")
        self.model_path.returnPressed.connect(lambda: self.load_model(self.model_path.text()))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._choose_model)
        load = QPushButton("Load")
        load.clicked.connect(lambda: self.load_model(self.model_path.text()))
        for widget in (self.model_path, browse, load):
            row.addWidget(widget)
        mlayout.addLayout(row)
        self.model_info = QPlainTextEdit()
        self.model_info.setReadOnly(True)
        self.model_info.setPlaceholderText("No model loaded.")
        self.model_info.setMaximumHeight(110)
        mlayout.addWidget(self.model_info)
        layout.addWidget(model_box)
        # Shared by the image tab's form: the layer choice belongs to the dock.
        self.layer_combo = QComboBox()
        self.layer_combo.currentIndexChanged.connect(self._on_layer_choice)
        self.pixel_size = float_spin(
            0.0, 100.0, 0.0, step=0.01, decimals=4, suffix=" um/px", special="unknown",
            tooltip="Pixel size of the image; 'unknown' assumes the model's own",
        )
        self.pixel_size.valueChanged.connect(self.state.set_pixel_size)
        self.image = ImageTab(self)
        self.evaluation = EvaluationTab(self)
        self.rescaling = RescaleTab(self)
        self.calibrating = CalibrateTab(self)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.image, "Image")
        self.tabs.addTab(self.evaluation, "Evaluate")
        self.tabs.addTab(self.rescaling, "Rescale")
        self.tabs.addTab(self.calibrating, "Calibrate")
        layout.addWidget(self.tabs, 1)

    def _hook_viewer(self) -> None:
        """Follow the viewer's layers, z slider and mouse; unhooked when the dock closes."""
        viewer = self.viewer
        hooks = (
            (viewer.layers.events.inserted, self._refresh_layers),
            (viewer.layers.events.removed, self._refresh_layers),
            (viewer.layers.selection.events.active, self._on_active_layer),
            (viewer.dims.events.current_step, self.image.on_step),
        )
        for emitter, callback in hooks:
            slot = self.lifecycle.guard(callback)
            emitter.connect(slot)
            self.lifecycle.add_cleanup(lambda e=emitter, s=slot: _disconnect(e, s))
        mouse = self.lifecycle.guard(self.image.on_mouse_move)
        viewer.mouse_move_callbacks.append(mouse)
        self.lifecycle.add_cleanup(lambda: viewer.mouse_move_callbacks.remove(mouse))

    def _update_controls(self) -> None:
        controls = self.state.controls()
        self.image.show_controls(controls)
        self.evaluation.show_controls(controls)
        self.rescaling.show_controls(controls)
        self.calibrating.show_controls(controls)

    def failed(self, exc: BaseException) -> None:
        """A job's error as a notification."""
        self.show_failure(exc, "Inspection")

    # -- model ----------------------------------------------------------------------------

    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load model", "", "zfocus models (*.zfm);;All files (*)"
        )
        if path:
            self.load_model(path)

    def load_model(self, path: str | Path) -> Any:
        """Read a model file in a worker and show its metadata; on error, notify and keep
        the old model. Returns the worker (None when the path is empty)."""
        try:
            path = self.state.begin_loading(path)
        except ZFocusError as exc:
            show_error(str(exc))
            return None

        def failed(exc: BaseException) -> None:
            self.state.loading_failed(path)
            self.failed(exc)

        return self.start_worker(
            load_model_job, path, returned=self.state.model_loaded, errored=failed
        )

    def _show_model(self, loaded: LoadedModel) -> None:
        self.model_path.setText(str(loaded.path))
        self.model_info.setPlainText(loaded.description)

    # -- image layer ----------------------------------------------------------------------

    def _image_layers(self) -> list[Any]:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image)
                and not layer.name.endswith((Z_SUFFIX, CONF_SUFFIX))]

    def _refresh_layers(self, *_: Any) -> None:
        current = self.layer_combo.currentText()
        names = [layer.name for layer in self._image_layers()]
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        if current in names:
            self.layer_combo.setCurrentText(current)
        self.layer_combo.blockSignals(False)
        self._on_layer_choice()

    def _on_active_layer(self, event: Any) -> None:
        layer = getattr(event, "value", None)
        names = [self.layer_combo.itemText(i) for i in range(self.layer_combo.count())]
        if layer is not None and layer.name in names:
            self.layer_combo.setCurrentText(layer.name)

    def current_layer(self) -> Any:
        """The chosen Image layer, or None."""
        name = self.layer_combo.currentText()
        if name and name in self.viewer.layers:
            return self.viewer.layers[name]
        return None

    def _on_layer_choice(self, *_: Any) -> None:
        layer = self.current_layer()
        if layer is None:
            self.state.set_layer("")
            return
        px = pixel_size_from_layer(layer.scale, layer.metadata, getattr(layer, "units", None))
        self.state.set_layer(layer.name, px)

    def _show_layer(self, name: str, pixel_size_um: float) -> None:
        if name:  # keep the last value shown while no layer is chosen
            self.pixel_size.setValue(pixel_size_um)


def _disconnect(emitter: Any, slot: Any) -> None:
    with contextlib.suppress(RuntimeError, TypeError, ValueError):
        emitter.disconnect(slot)
