"""Inspection dock: slice prediction, aligned focus-map layers, dataset evaluation, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QThreadPool

from napari_zfocus._qt.inspection_widget import CONF_SUFFIX, Z_SUFFIX, InspectionWidget
from napari_zfocus.data.annotations import Annotation, write_annotations
from napari_zfocus.data.stack import write_stack
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import save_model
from napari_zfocus.model.network import build_network

N_BINS = 41


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    config = ModelConfig(field_um=12, pixel_size_um=0.24, conv_features=(4, 8), fc_features=32)
    meta = {"training": {"steps": 7, "train_stacks": 3, "val_stacks": ["a.tif"],
                         "validation": {"median_abs_error_um": 1.5}}}
    path = tmp_path_factory.mktemp("model") / "tiny.zfm"
    return save_model(path, build_network(config), config, meta)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Two 7-slice stacks of 56 x 56 px at 0.24 um/px (noise: plumbing, not accuracy)."""
    root = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(0)
    annotations = []
    for k in range(2):
        data = rng.integers(100, 4000, size=(7, 56, 56)).astype(np.uint16)
        write_stack(root / f"s{k}.tif", data, z_step_um=1.0, pixel_size_um=0.24)
        annotations.append(Annotation(f"s{k}.tif", 3, 1.0, 0.24))
    write_annotations(root, annotations)
    return root


@pytest.fixture
def errors(monkeypatch):
    messages: list[str] = []
    monkeypatch.setattr("napari_zfocus._qt._dock.show_error", messages.append)
    monkeypatch.setattr("napari_zfocus._qt.inspection_widget.show_error", messages.append)
    monkeypatch.setattr("napari_zfocus._qt._inspection_image.show_warning", messages.append)
    return messages


def _idle() -> bool:
    return QThreadPool.globalInstance().activeThreadCount() == 0


def _loaded(qtbot, widget: InspectionWidget) -> InspectionWidget:
    """Wait for the model file given at construction (it is read in a worker)."""
    qtbot.waitUntil(lambda: widget.state.predictor is not None, timeout=30000)
    return widget


def _load(qtbot, widget: InspectionWidget, path) -> bool:
    """Load a model file and wait; True if the dock now uses it."""
    widget.load_model(path)
    qtbot.waitUntil(lambda: widget.state.loading is None, timeout=30000)
    return widget.state.model is not None and widget.state.model.path == path


def test_predict_displayed_slice_and_follow_z(make_napari_viewer, qtbot, tiny_model):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    image = rng.random((4, 60, 60)).astype(np.float32)
    viewer.add_image(image, name="stack", scale=(1.0, 0.24, 0.24))
    widget = _loaded(qtbot, InspectionWidget(viewer, model_path=tiny_model))
    viewer.window.add_dock_widget(widget)
    assert "12 um at 0.24 um/px" in widget.model_info.toPlainText()
    assert "7 steps" in widget.model_info.toPlainText()
    assert widget.layer_combo.currentText() == "stack"
    assert widget.pixel_size.value() == pytest.approx(0.24)
    widget.image.predict_button.click()
    qtbot.waitUntil(lambda: widget.state.last_prediction is not None, timeout=30000)
    pred = widget.state.last_prediction
    assert widget.image.softmax.heights.shape == (N_BINS,)
    np.testing.assert_allclose(widget.image.softmax.heights, pred.softmax)
    assert widget.image.values["z"].text() == f"{pred.z_um:+.2f} um"
    assert widget.image.values["bimodal"].text() in ("no", "YES (ambiguous)")
    # Following the slider: a new slice gives a new prediction.
    widget.image.follow_box.setChecked(True)
    qtbot.waitUntil(lambda: widget.state.last_prediction is not pred, timeout=30000)
    second = widget.state.last_prediction
    viewer.dims.set_current_step(0, 3)
    qtbot.waitUntil(lambda: widget.state.last_prediction is not second, timeout=30000)
    qtbot.waitUntil(lambda: not widget.state.predicting and _idle(), timeout=30000)


def test_focus_map_layers_are_aligned_with_image(make_napari_viewer, qtbot, tiny_model):
    viewer = make_napari_viewer()
    image = np.random.default_rng(2).random((130, 110)).astype(np.float32)
    layer = viewer.add_image(image, name="field", scale=(0.24, 0.24), translate=(5.0, -3.0))
    widget = _loaded(qtbot, InspectionWidget(viewer, model_path=tiny_model))
    widget.image.compute_focus_map()
    qtbot.waitUntil(lambda: "field" + Z_SUFFIX in viewer.layers, timeout=30000)
    fmap = widget.state.focus_map
    zlayer, clayer = viewer.layers["field" + Z_SUFFIX], viewer.layers["field" + CONF_SUFFIX]
    assert zlayer.data.shape == fmap.shape == (2, 2)  # 50 px tiles in 130 x 110 px
    np.testing.assert_allclose(zlayer.data, fmap.z_um, rtol=1e-6)
    np.testing.assert_allclose(clayer.data, fmap.confidence, rtol=1e-6)
    for lay in (zlayer, clayer):
        np.testing.assert_allclose(lay.scale, [fmap.stride_px * 0.24] * 2)
    # Every tile's centre lands on the image pixel at that tile's centre, in world units.
    cy, cx = fmap.centres_px()
    for i in range(2):
        for j in range(2):
            world_from_map = zlayer.data_to_world((i, j))
            world_from_image = layer.data_to_world((cy[i], cx[j]))
            np.testing.assert_allclose(world_from_map, world_from_image, atol=1e-9)
    # The tile under a world point shows its softmax.
    idx = widget.image.show_tile_at(zlayer.world_to_data(layer.data_to_world((cy[1], cx[0]))))
    assert idx == (1, 0)
    np.testing.assert_allclose(widget.image.softmax.heights, fmap.softmax[1, 0])
    assert widget.image.show_tile_at((-5, 0)) is None
    qtbot.waitUntil(_idle, timeout=30000)


def test_evaluation_confusion_matrix_and_export(
    make_napari_viewer, qtbot, tiny_model, tiny_dataset, tmp_path
):
    viewer = make_napari_viewer()
    widget = _loaded(qtbot, InspectionWidget(viewer, model_path=tiny_model))
    widget.evaluation.dataset_path.setText(str(tiny_dataset))
    widget.evaluation.baselines_box.setChecked(True)
    widget.evaluation.eval_button.click()
    tab = widget.evaluation
    assert not tab.eval_button.isEnabled() and tab.eval_cancel.isEnabled()
    qtbot.waitUntil(lambda: widget.state.result is not None, timeout=20000)
    result = widget.state.result
    assert result.metrics["n_images"] == 14
    assert result.confusion.shape == (N_BINS, N_BINS)
    rows = result.confusion.sum(axis=1)
    np.testing.assert_allclose(rows[rows > 0], 1.0)  # P(predicted | true) per true bin
    assert widget.evaluation.metrics.columnCount() >= 7
    table = widget.evaluation.metrics
    methods = [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]
    assert methods[:2] == ["CNN", "CNN argmax"] and len(methods) > 2  # baselines beside the CNN
    assert widget.evaluation.metrics.item(0, 0).text() == "14"
    assert widget.evaluation.metrics.item(len(methods) - 1, 0).text() == "14"
    assert [tab.plot_tabs.tabText(i) for i in range(tab.plot_tabs.count())] == [
        "Confusion", "Error histogram", "Error vs true z"]
    qtbot.waitUntil(lambda: widget.evaluation.export_button.isEnabled(), timeout=30000)
    written = widget.evaluation.export(tmp_path / "out")
    names = {p.name for p in written}
    assert {"confusion.png", "confusion_matrix.csv", "metrics.csv"} <= names
    assert (tmp_path / "out" / "metrics.csv").read_text().startswith("metric,CNN,CNN argmax")
    qtbot.waitUntil(_idle, timeout=30000)


def test_bad_input_is_notified_and_widget_stays_usable(
    make_napari_viewer, qtbot, tiny_model, tmp_path, errors
):
    viewer = make_napari_viewer()
    widget = InspectionWidget(viewer)
    # Tampered model: flip bytes in the weights.
    tampered = tmp_path / "tampered.zfm"
    raw = bytearray(tiny_model.read_bytes())
    raw[-20:-10] = bytes(10)
    tampered.write_bytes(bytes(raw))
    assert _load(qtbot, widget, tampered) is False
    assert "tampered.zfm" in errors[-1]
    assert widget.state.predictor is None
    assert _load(qtbot, widget, tmp_path / "missing.zfm") is False and "missing.zfm" in errors[-1]
    assert _load(qtbot, widget, tiny_model)
    # Missing and empty dataset folders.
    widget.evaluation.dataset_path.setText(str(tmp_path / "nowhere"))
    widget.evaluation.evaluate()
    assert "nowhere" in errors[-1]
    empty = tmp_path / "empty"
    empty.mkdir()
    widget.evaluation.dataset_path.setText(str(empty))
    widget.evaluation.evaluate()
    qtbot.waitUntil(lambda: not widget.state.eval_job.running, timeout=30000)
    assert "empty" in errors[-1]
    # Image smaller than the model's field; then an unknown pixel size only warns.
    viewer.add_image(np.zeros((20, 20), np.float32), name="small")
    widget.image.predict_current()
    qtbot.waitUntil(lambda: not widget.state.predicting, timeout=30000)
    assert "unknown" in errors[-2] and "smaller" in errors[-1]
    viewer.add_image(np.random.default_rng(0).random((64, 64)).astype(np.float32), name="big")
    widget.layer_combo.setCurrentText("big")
    widget.image.predict_current()
    qtbot.waitUntil(lambda: widget.state.last_prediction is not None, timeout=30000)
    qtbot.waitUntil(_idle, timeout=30000)


def test_closing_viewer_during_evaluation_leaves_no_thread(
    make_napari_viewer, qtbot, tiny_model, tiny_dataset
):
    viewer = make_napari_viewer()
    widget = _loaded(qtbot, InspectionWidget(viewer, model_path=tiny_model))
    viewer.window.add_dock_widget(widget)
    widget.evaluation.dataset_path.setText(str(tiny_dataset))
    widget.evaluation.evaluate()
    viewer.close()
    qtbot.waitUntil(_idle, timeout=30000)
