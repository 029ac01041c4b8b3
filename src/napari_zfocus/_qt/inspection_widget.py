"""Inspection dock: what does the model say about this image, this field, this dataset?

Three tools over one loaded model:

* **Slice** -- predicted z, confidence, bimodal flag and the softmax bar chart for the
  displayed slice of any Image layer (optionally following the z slider);
* **Focus map** -- tiled prediction over the whole field, shown as colour-mapped z and
  confidence layers in the image's world coordinates; hovering a tile shows its softmax;
* **Evaluate** -- a dataset run with progress and cancel: confusion heatmap P(predicted |
  true) (paper Fig. 3a), error histogram, error vs true z, metrics beside the baselines,
  PNG/CSV export.

All computing happens in workers over Qt-free core functions; this module only moves plain
data in and results out (layers are touched in the main thread's handlers).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from napari_zfocus._qt._canvas import PlotCanvas, SoftmaxBars
from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.display import (
    METRIC_ROWS,
    describe_model,
    displayed_plane,
    focus_map_transform,
    metrics_table,
    pixel_size_from_layer,
    tile_index,
    write_metrics_csv,
)

if TYPE_CHECKING:
    import napari

Z_SUFFIX = " focus z"
CONF_SUFFIX = " confidence"


# -- worker jobs (plain data in, plain data out; no Qt, no layers) ---------------------------

def _predict_job(predictor: Any, plane: Any, pixel_size_um: float) -> Any:
    return predictor.predict(np.asarray(plane), pixel_size_um)


def _tiles_job(predictor: Any, plane: Any, px: float, tile_um: float | None,
               stride_um: float | None, cancel: threading.Event):
    image = np.asarray(plane)  # a lazy (dask) slice is read here, off the GUI thread
    result = yield from predictor.iter_predict_tiles(image, px, tile_um, stride_um, cancel=cancel)
    return result


def _evaluate_job(predictor: Any, folder: str, baselines: bool, cancel: threading.Event):
    from napari_zfocus.data.annotations import read_dataset
    from napari_zfocus.errors import DatasetError
    from napari_zfocus.inspection.evaluation import iter_evaluate

    dataset = read_dataset(folder)
    if len(dataset) == 0:
        raise DatasetError(f"{dataset.csv_path}: no annotated stacks to evaluate")
    result = yield from iter_evaluate(predictor, dataset, baselines=baselines, cancel=cancel)
    if result.metrics.get("n_images", 0) == 0 and not result.cancelled:
        raise DatasetError(
            f"{folder}: no slice lies inside the model's z range "
            f"({predictor.config.z_min_um:+g}..{predictor.config.z_max_um:+g} um)"
        )
    return result


def _embed(figure: Any, height_px: int = 300) -> FigureCanvasQTAgg:
    """A Qt canvas showing a core (Agg) figure."""
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(height_px)
    return canvas


class InspectionWidget(QWidget):
    """Inspect a z-position model on images, fields and datasets.

    Parameters
    ----------
    viewer
        The napari viewer (injected by npe2).
    parent
        Qt parent.
    model_path
        Model file to load at once (optional).
    """

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        parent: QWidget | None = None,
        *,
        model_path: str | Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.predictor: Any = None
        self.last_prediction: Any = None
        self.focus_map: Any = None
        self.result: Any = None  # last EvaluationResult
        self._workers: set[Any] = set()
        self._predict_worker: Any = None
        self._predict_again = False
        self._tiles_cancel: threading.Event | None = None
        self._eval_cancel: threading.Event | None = None
        self._eval_progress: Any = None
        self._map_layers: tuple[Any, Any] | None = None
        self._closed = False
        self._warned_pixel_size: set[str] = set()

        self._build_ui()
        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        viewer.layers.selection.events.active.connect(self._on_active_layer)
        viewer.dims.events.current_step.connect(self._on_step)
        viewer.mouse_move_callbacks.append(self._on_mouse_move)
        self._teardown = self._make_teardown()
        self.destroyed.connect(self._teardown)
        self._refresh_layers()
        if model_path is not None:
            self.load_model(model_path)
        self._update_state()

    # -- UI ----------------------------------------------------------------------------------

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
        row.addWidget(self.model_path)
        row.addWidget(browse)
        row.addWidget(load)
        mlayout.addLayout(row)
        self.model_info = QPlainTextEdit()
        self.model_info.setReadOnly(True)
        self.model_info.setPlaceholderText("No model loaded.")
        self.model_info.setMaximumHeight(110)
        mlayout.addWidget(self.model_info)
        layout.addWidget(model_box)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_image_tab(), "Image")
        self.tabs.addTab(self._build_eval_tab(), "Evaluate")
        layout.addWidget(self.tabs, 1)

    def _build_image_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        form = QFormLayout()
        self.layer_combo = QComboBox()
        self.layer_combo.currentIndexChanged.connect(self._on_layer_choice)
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setRange(0.0, 100.0)
        self.pixel_size.setDecimals(4)
        self.pixel_size.setSingleStep(0.01)
        self.pixel_size.setSuffix(" um/px")
        self.pixel_size.setSpecialValueText("unknown")
        self.pixel_size.setToolTip("Pixel size of the image; 'unknown' assumes the model's own")
        form.addRow("image layer", self.layer_combo)
        form.addRow("pixel size", self.pixel_size)
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
        for i, (key, text) in enumerate(
            (("z", "z (expected)"), ("argmax", "z (argmax bin)"), ("confidence", "confidence"),
             ("bimodal", "bimodal"))
        ):
            label = QLabel("-")
            grid.addWidget(QLabel(text), i // 2, 2 * (i % 2))
            grid.addWidget(label, i // 2, 2 * (i % 2) + 1)
            self.values[key] = label
        layout.addLayout(grid)
        self.softmax_canvas = PlotCanvas(140)
        self.softmax = SoftmaxBars(self.softmax_canvas)
        layout.addWidget(self.softmax_canvas)

        tiles = QGroupBox("Focus map (tiled)")
        tform = QFormLayout(tiles)
        self.tile_um = QDoubleSpinBox()
        self.tile_um.setRange(0.0, 10000.0)
        self.tile_um.setSuffix(" um")
        self.tile_um.setSpecialValueText("model field")
        self.stride_um = QDoubleSpinBox()
        self.stride_um.setRange(0.0, 10000.0)
        self.stride_um.setSuffix(" um")
        self.stride_um.setSpecialValueText("= tile")
        tform.addRow("tile", self.tile_um)
        tform.addRow("stride", self.stride_um)
        trow = QHBoxLayout()
        self.map_button = QPushButton("Compute focus map")
        self.map_button.clicked.connect(self.compute_focus_map)
        self.map_cancel = QPushButton("Cancel")
        self.map_cancel.clicked.connect(self._cancel_tiles)
        trow.addWidget(self.map_button)
        trow.addWidget(self.map_cancel)
        tform.addRow(trow)
        self.tile_label = QLabel("hover a tile to see its softmax")
        tform.addRow(self.tile_label)
        layout.addWidget(tiles)
        layout.addStretch(1)
        return tab

    def _build_eval_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        row = QHBoxLayout()
        self.dataset_path = QLineEdit()
        self.dataset_path.setPlaceholderText("dataset folder (annotations.csv + stacks)")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._choose_dataset)
        row.addWidget(self.dataset_path)
        row.addWidget(browse)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.baselines_box = QCheckBox("focus-score baselines")
        self.baselines_box.setChecked(True)
        self.eval_button = QPushButton("Evaluate")
        self.eval_button.clicked.connect(self.evaluate)
        self.eval_cancel = QPushButton("Cancel")
        self.eval_cancel.clicked.connect(self._cancel_eval)
        row.addWidget(self.baselines_box)
        row.addWidget(self.eval_button)
        row.addWidget(self.eval_cancel)
        layout.addLayout(row)
        self.eval_status = QLabel("")
        self.eval_status.setWordWrap(True)
        layout.addWidget(self.eval_status)

        self.metrics = QTableWidget(0, 0)
        self.metrics.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.metrics.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.metrics.setMinimumHeight(170)
        layout.addWidget(self.metrics)
        self.plot_tabs = QTabWidget()
        self.plot_tabs.setMinimumHeight(320)
        layout.addWidget(self.plot_tabs, 1)
        row = QHBoxLayout()
        self.export_button = QPushButton("Export PNG + CSV...")
        self.export_button.clicked.connect(self._choose_export)
        row.addWidget(self.export_button)
        layout.addLayout(row)
        return tab

    def _update_state(self) -> None:
        has_model = self.predictor is not None
        has_layer = self.current_layer() is not None
        predicting = self._predict_worker is not None
        mapping = self._tiles_cancel is not None
        evaluating = self._eval_cancel is not None
        self.predict_button.setEnabled(has_model and has_layer and not predicting)
        self.map_button.setEnabled(has_model and has_layer and not mapping)
        self.map_cancel.setEnabled(mapping)
        self.eval_button.setEnabled(has_model and not evaluating)
        self.eval_cancel.setEnabled(evaluating)
        self.export_button.setEnabled(self.result is not None and not evaluating)

    # -- model -------------------------------------------------------------------------------

    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load model", "", "zfocus models (*.zfm);;All files (*)"
        )
        if path:
            self.load_model(path)

    def load_model(self, path: str | Path) -> bool:
        """Load a model file and show its metadata; notify and keep the old one on error."""
        from napari_zfocus.model.inference import Predictor

        if not str(path).strip():
            show_error("Enter a model file path first.")
            return False
        try:
            predictor = Predictor.from_file(path)
        except ZFocusError as exc:
            show_error(str(exc))
            return False
        from napari_zfocus.model.io import read_model_info

        _, _, info = read_model_info(path)
        self.predictor = predictor
        self.model_path.setText(str(path))
        rows = describe_model(predictor.config, predictor.metadata, info)
        width = max(len(k) for k, _ in rows)
        self.model_info.setPlainText("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
        self._update_state()
        return True

    # -- image layer -------------------------------------------------------------------------

    def _image_layers(self) -> list[Any]:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image)
                and not layer.name.endswith((Z_SUFFIX, CONF_SUFFIX))]

    def _refresh_layers(self, *_: Any) -> None:
        if self._closed:
            return
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
        if self._closed:
            return
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
        if layer is not None:
            px = pixel_size_from_layer(layer.scale, layer.metadata, getattr(layer, "units", None))
            self.pixel_size.setValue(px or 0.0)
        self._update_state()

    def _plane_and_pixel_size(self) -> tuple[Any, float, Any] | None:
        """(plane, pixel size, layer) of the current slice, or None after notifying."""
        if self.predictor is None:
            show_error("Load a model first.")
            return None
        layer = self.current_layer()
        if layer is None:
            show_error("Add or choose an Image layer to inspect.")
            return None
        try:
            data_point = layer.world_to_data(self.viewer.dims.point)
            plane = displayed_plane(layer.data, data_point, rgb=bool(getattr(layer, "rgb", False)))
        except ZFocusError as exc:
            show_error(f"{layer.name}: {exc}")
            return None
        px = self.pixel_size.value()
        if px <= 0:
            px = self.predictor.config.pixel_size_um
            if layer.name in self._warned_pixel_size:
                return plane, px, layer
            self._warned_pixel_size.add(layer.name)  # once per layer, not per slider step
            show_warning(
                f"{layer.name}: pixel size unknown; assuming the model's {px:g} um/px. "
                "Set it in 'pixel size' if the image was taken at another magnification."
            )
        return plane, px, layer

    # -- single prediction -------------------------------------------------------------------

    def predict_current(self) -> None:
        """Predict z for the displayed slice of the chosen layer (in a worker)."""
        if self._predict_worker is not None:
            self._predict_again = True  # coalesce: one more run when this one ends
            return
        got = self._plane_and_pixel_size()
        if got is None:
            return
        plane, px, _ = got
        worker = create_worker(_predict_job, self.predictor, plane, px, _ignore_errors=True)
        worker.returned.connect(self._on_prediction)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._guard(self._on_predict_finished))
        self._predict_worker = worker
        self._start(worker)

    def _on_predict_finished(self) -> None:
        self._predict_worker = None
        self._update_state()
        if self._predict_again:
            self._predict_again = False
            self.predict_current()

    def _on_step(self, *_: Any) -> None:
        if self._closed:
            return
        if (
            self.follow_box.isChecked()
            and self.predictor is not None
            and self.current_layer() is not None
        ):
            self.predict_current()

    def _on_prediction(self, pred: Any) -> None:
        self.last_prediction = pred
        self.values["z"].setText(f"{pred.z_um:+.2f} um")
        self.values["argmax"].setText(f"{pred.z_argmax_um:+.1f} um")
        self.values["confidence"].setText(f"{pred.confidence:.2f}")
        self.values["bimodal"].setText("YES (ambiguous)" if pred.bimodal else "no")
        self.softmax.ax.set_title("softmax of the displayed slice", fontsize=9)
        self.softmax.set(pred.softmax, pred.bin_centres_um, pred.z_um)
        self.softmax_canvas.draw()

    # -- focus map ---------------------------------------------------------------------------

    def compute_focus_map(self) -> None:
        """Tiled prediction over the displayed slice (in a worker with progress)."""
        if self._tiles_cancel is not None:
            return
        got = self._plane_and_pixel_size()
        if got is None:
            return
        plane, px, layer = got
        tile = self.tile_um.value() or None
        stride = self.stride_um.value() or None
        cancel = threading.Event()
        worker = create_worker(
            _tiles_job, self.predictor, plane, px, tile, stride, cancel,
            _progress={"desc": "Focus map", "total": 0}, _ignore_errors=True,
        )
        geometry = (layer.name, tuple(layer.scale[-2:]), tuple(layer.translate[-2:]))
        pbar = getattr(worker, "pbar", None)
        worker.yielded.connect(self._guard(self._on_tiles_progress, pbar))
        worker.returned.connect(self._guard(self._on_focus_map, geometry))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._guard(self._on_tiles_finished))
        self._tiles_cancel = cancel
        self._start(worker)
        self._update_state()

    def _on_tiles_progress(self, pbar: Any, done_total: tuple[int, int]) -> None:
        done, total = done_total
        if pbar is not None:
            pbar.total = total
            pbar.n = done
            pbar.refresh()

    def _cancel_tiles(self) -> None:
        if self._tiles_cancel is not None:
            self._tiles_cancel.set()

    def _on_tiles_finished(self) -> None:
        self._tiles_cancel = None
        self._update_state()

    def _on_focus_map(self, geometry: tuple[str, tuple, tuple], fmap: Any) -> None:
        if fmap is None:
            show_info("Focus map cancelled.")
            return
        name, scale_yx, translate_yx = geometry
        self.focus_map = fmap
        scale, translate = focus_map_transform(fmap, scale_yx, translate_yx)
        zlim = float(max(np.nanmax(np.abs(fmap.z_um)), self.predictor.config.bin_um))
        # Replace maps of the same image rather than piling up layers.
        for suffix in (Z_SUFFIX, CONF_SUFFIX):
            if name + suffix in self.viewer.layers:
                self.viewer.layers.remove(name + suffix)
        conf = self.viewer.add_image(
            fmap.confidence.astype(np.float32), name=name + CONF_SUFFIX, scale=scale,
            translate=translate, colormap="viridis", contrast_limits=(0.0, 1.0), opacity=0.6,
            visible=False, metadata={"zfocus_focus_map": True},
        )
        zmap = self.viewer.add_image(
            fmap.z_um.astype(np.float32), name=name + Z_SUFFIX, scale=scale, translate=translate,
            colormap="PiYG", contrast_limits=(-zlim, zlim), opacity=0.5,
            metadata={"zfocus_focus_map": True},
        )
        zmap.colorbar.visible = True  # the z scale in um, top right of the canvas
        self._map_layers = (zmap, conf)
        # Keep the image chosen: the new layers became the active ones.
        self.layer_combo.setCurrentText(name)
        rows, cols = fmap.shape
        self.tile_label.setText(
            f"{rows} x {cols} tiles; "
            f"z {np.nanmin(fmap.z_um):+.1f} .. {np.nanmax(fmap.z_um):+.1f} um. "
            "Hover a tile to see its softmax."
        )

    def _on_mouse_move(self, viewer: Any, event: Any) -> None:
        """Show the softmax of the focus-map tile under the cursor."""
        if self._closed or self._map_layers is None or self.focus_map is None:
            return
        zmap = self._map_layers[0]
        if zmap not in viewer.layers:
            self._map_layers = None
            return
        self.show_tile_at(zmap.world_to_data(event.position))

    def show_tile_at(self, data_coords: Any) -> tuple[int, int] | None:
        """Show the softmax of the tile at focus-map data coordinates; return its index."""
        fmap = self.focus_map
        if fmap is None:
            return None
        idx = tile_index(data_coords, fmap.shape)
        if idx is None:
            return None
        i, j = idx
        self.softmax.ax.set_title(f"softmax of tile ({i}, {j})", fontsize=9)
        self.softmax.set(fmap.softmax[i, j], fmap.bin_centres_um, float(fmap.z_um[i, j]))
        self.softmax_canvas.request_draw(0.05)
        flag = ", BIMODAL" if fmap.bimodal[i, j] else ""
        self.tile_label.setText(
            f"tile ({i}, {j}): z {fmap.z_um[i, j]:+.2f} um, "
            f"confidence {fmap.confidence[i, j]:.2f}{flag}"
        )
        return idx

    # -- evaluation --------------------------------------------------------------------------

    def _choose_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder")
        if folder:
            self.dataset_path.setText(folder)

    def evaluate(self) -> None:
        """Evaluate the model on the dataset folder (in a worker with progress and cancel)."""
        if self._eval_cancel is not None:
            return
        if self.predictor is None:
            show_error("Load a model first.")
            return
        folder = self.dataset_path.text().strip()
        if not folder:
            show_error("Choose a dataset folder (with annotations.csv) first.")
            return
        if not Path(folder).is_dir():
            show_error(f"{folder}: no such folder")
            return
        cancel = threading.Event()
        worker = create_worker(
            _evaluate_job, self.predictor, folder, self.baselines_box.isChecked(), cancel,
            _ignore_errors=True,
        )
        self._eval_progress = progress(total=0, desc="Evaluating model")
        worker.yielded.connect(self._guard(self._on_eval_progress))
        worker.returned.connect(self._guard(self._on_evaluation))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._guard(self._on_eval_finished))
        self._eval_cancel = cancel
        self.eval_status.setText("Evaluating...")
        self._start(worker)
        self._update_state()

    def _on_eval_progress(self, event: Any) -> None:
        pbar = self._eval_progress
        if pbar is not None:
            pbar.set_description(f"Evaluating ({event.stage})")
            pbar.total = max(int(event.total), 1)
            pbar.n = int(event.done)
            pbar.refresh()
        self.eval_status.setText(f"{event.stage}: {event.done}/{event.total} {event.message}")

    def _cancel_eval(self) -> None:
        if self._eval_cancel is not None:
            self._eval_cancel.set()
            self.eval_status.setText("Cancelling...")

    def _on_eval_finished(self) -> None:
        self._eval_cancel = None
        if self._eval_progress is not None:
            self._eval_progress.close()
            self._eval_progress = None
        self._update_state()

    def _on_evaluation(self, result: Any) -> None:
        from napari_zfocus.inspection import plots

        self.result = result
        m = result.metrics
        note = " (cancelled: partial result)" if result.cancelled else ""
        within = m.get("within_1um")
        self.eval_status.setText(
            f"{m.get('n_images', 0)} images{note}; "
            + (f"{100 * within:.0f}% within +/-1 um" if within is not None else "no images")
        )
        methods, headers, cells = metrics_table(result)
        self.metrics.clear()
        self.metrics.setRowCount(len(methods))
        self.metrics.setColumnCount(len(headers))
        self.metrics.setHorizontalHeaderLabels(headers)
        self.metrics.setVerticalHeaderLabels(methods)
        for c, (_, _, description) in enumerate(METRIC_ROWS):
            self.metrics.horizontalHeaderItem(c).setToolTip(description)
        for r, row in enumerate(cells):
            for c, text in enumerate(row):
                self.metrics.setItem(r, c, QTableWidgetItem(text))

        t = result.per_image["z_true_um"].astype(float)
        p = result.per_image["z_pred_um"].astype(float)
        base_err = {k: v - t for k, v in result.baseline_predictions.items()}
        self.figures = {
            "Confusion": plots.confusion_heatmap(result.confusion, result.bin_centres_um),
            "Error histogram": plots.error_histogram(p - t, baselines=base_err),
            "Error vs true z": plots.error_vs_true_z(t, p, baselines=result.baseline_predictions),
        }
        while self.plot_tabs.count():
            page = self.plot_tabs.widget(0)
            self.plot_tabs.removeTab(0)
            page.deleteLater()
        for name, fig in self.figures.items():
            self.plot_tabs.addTab(_embed(fig), name)

    def _choose_export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export evaluation to folder")
        if folder:
            self.export(folder)

    def export(self, folder: str | Path) -> list[Path]:
        """Write the evaluation plots (PNG), per-image/confusion/metrics tables (CSV)."""
        if self.result is None:
            show_error("Nothing to export: run an evaluation first.")
            return []
        from napari_zfocus.inspection.plots import save_evaluation_plots

        try:
            written = save_evaluation_plots(self.result, folder)
            written.append(write_metrics_csv(self.result, Path(folder) / "metrics.csv"))
        except OSError as exc:
            show_error(f"{folder}: cannot write the evaluation ({exc.strerror or exc})")
            return []
        show_info(f"Wrote {len(written)} files to {folder}")
        return written

    # -- plumbing ----------------------------------------------------------------------------

    def _start(self, worker: Any) -> None:
        self._workers.add(worker)
        worker.finished.connect(lambda: self._workers.discard(worker))
        worker.start()

    def _guard(self, func: Any, *args: Any) -> Any:
        """Slot calling ``func(*args, *signal_args)`` unless the widget is already closed."""

        def slot(*signal_args: Any) -> None:
            if not self._closed:
                func(*args, *signal_args)

        return slot

    def _on_error(self, exc: BaseException) -> None:
        if self._closed:
            return
        if isinstance(exc, ZFocusError):
            show_error(str(exc))
        else:
            show_error(f"Inspection failed: {type(exc).__name__}: {exc}")

    def _make_teardown(self) -> Any:
        """Slot for ``destroyed``: cancel jobs, unhook viewer callbacks (no Qt calls on self)."""
        viewer = self.viewer
        state = self.__dict__  # plain dict: still readable after the C++ object is gone
        hooks = (
            (viewer.layers.events.inserted, self._refresh_layers),
            (viewer.layers.events.removed, self._refresh_layers),
            (viewer.layers.selection.events.active, self._on_active_layer),
            (viewer.dims.events.current_step, self._on_step),
        )
        mouse = self._on_mouse_move

        def teardown(*_: Any) -> None:
            if state.get("_closed"):
                return
            state["_closed"] = True
            for key in ("_tiles_cancel", "_eval_cancel"):
                if state.get(key) is not None:
                    state[key].set()
            for worker in list(state.get("_workers", ())):
                worker.quit()  # generators stop at their next yield; cancel events sooner
            if mouse in viewer.mouse_move_callbacks:
                viewer.mouse_move_callbacks.remove(mouse)
            for emitter, callback in hooks:
                with contextlib.suppress(RuntimeError, TypeError, ValueError):
                    emitter.disconnect(callback)

        return teardown

    def shutdown(self) -> None:
        """Cancel running jobs and unhook from the viewer (also runs on ``destroyed``)."""
        self._teardown()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        """Closing the dock cancels running jobs."""
        self.shutdown()
        super().closeEvent(event)
