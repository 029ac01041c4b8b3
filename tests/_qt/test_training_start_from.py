"""The training dock's "start from": scratch, the base model (only when installed), or a
model file whose network the run keeps, with the fine-tuning schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("napari")
pytest.importorskip("torch")

from _defocus_data import LEARNABLE, write_defocus_dataset
from napari_zfocus._qt import training_widget as training
from napari_zfocus._qt.training_widget import TrainingWidget
from napari_zfocus.model import base_model
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import load_model, save_model
from napari_zfocus.model.network import build_network
from napari_zfocus.training.run_state import RunState

BASE, BASE_FEATURES, FILE = 1, 2, 3  # positions of the choices in the combo


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("start_from")
    config = ModelConfig(**LEARNABLE)
    return {"start": save_model(d / "start.zfm", build_network(config), config),
            "data": write_defocus_dataset(d / "two", 2)}


def _widget(make_napari_viewer) -> TrainingWidget:
    viewer = make_napari_viewer()
    widget = TrainingWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def _base_item(widget: TrainingWidget):
    return widget.start_combo.model().item(BASE)


def test_base_is_disabled_with_a_tooltip_when_not_installed(make_napari_viewer, tmp_path,
                                                           monkeypatch, files):
    monkeypatch.setattr(base_model, "BASE_MODEL", tmp_path / "base_model.zfm")
    widget = _widget(make_napari_viewer)
    assert not _base_item(widget).isEnabled()
    assert "no base model" in _base_item(widget).toolTip()
    monkeypatch.setattr(base_model, "BASE_MODEL", files["start"])
    other = TrainingWidget(widget.viewer)
    assert _base_item(other).isEnabled()
    other.start_combo.setCurrentIndex(BASE)
    other.model_edit.setText(str(tmp_path / "m.zfm"))
    assert other.model_config() == ModelConfig(**LEARNABLE)
    assert other.train_config().start_from == "base"


def test_the_feature_networks_base_sets_its_network(make_napari_viewer, tmp_path):
    widget = _widget(make_napari_viewer)
    assert widget.start_combo.model().item(BASE_FEATURES).isEnabled()  # shipped
    widget.start_combo.setCurrentIndex(BASE_FEATURES)
    widget.model_edit.setText(str(tmp_path / "m.zfm"))
    assert widget.train_config().start_from == "base-features"
    shipped = load_model(base_model.base_model_path("base-features")).config
    assert widget.model_config() == shipped and shipped.architecture == "feature_mlp"


def test_a_model_file_sets_the_network_and_the_fine_tuning_schedule(make_napari_viewer, files,
                                                                    tmp_path):
    widget = _widget(make_napari_viewer)
    assert widget.start_spec() is None and widget.field_spin.isEnabled()
    assert not widget.start_edit.isEnabled()
    scratch_lr = widget.lr_spin.value()
    widget.start_combo.setCurrentIndex(FILE)
    assert widget.start_edit.isEnabled() and not widget.field_spin.isEnabled()
    assert widget.lr_spin.value() == pytest.approx(3e-4) and scratch_lr > 3e-4
    widget.start_edit.setText(str(files["start"]))
    widget.start_edit.editingFinished.emit()
    assert widget.field_spin.value() == 32.0 and widget.pixel_spin.value() == 1.0  # shown
    assert widget.model_config() == ModelConfig(**LEARNABLE)
    widget.model_edit.setText(str(tmp_path / "m.zfm"))
    tc = widget.train_config()
    assert tc.start_from == str(files["start"]) and not tc.keep_best and not tc.photometric
    widget.start_combo.setCurrentIndex(0)  # back to scratch: the form's network again
    assert widget.field_spin.isEnabled() and widget.lr_spin.value() == scratch_lr
    assert widget.train_config().start_from is None


def test_a_file_choice_without_a_file_is_one_notification(make_napari_viewer, files,
                                                         monkeypatch):
    errors: list[str] = []
    monkeypatch.setattr(training, "show_error", errors.append)
    widget = _widget(make_napari_viewer)
    widget.dataset_edit.setText(str(files["data"]))
    widget.start_combo.setCurrentIndex(FILE)
    assert not widget.start()
    assert errors == ["start model: choose the model file to start from"]
    assert widget.worker is None and widget.run.state is RunState.IDLE


def test_fine_tune_two_stacks_from_a_model_file(make_napari_viewer, qtbot, files, tmp_path):
    widget = _widget(make_napari_viewer)
    widget.dataset_edit.setText(str(files["data"]))
    out = tmp_path / "m.zfm"
    widget.model_edit.setText(str(out))
    widget.start_combo.setCurrentIndex(FILE)
    widget.start_edit.setText(str(files["start"]))
    widget.steps_spin.setValue(2)
    widget.minutes_spin.setValue(0)
    widget.batch_spin.setValue(4)
    assert widget.start()
    assert not widget.start_combo.isEnabled() and not widget.start_edit.isEnabled()
    qtbot.waitUntil(lambda: widget.run.state is RunState.DONE, timeout=60_000)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=10_000)
    assert "validation on training stacks (too few to hold out: 2)" in widget.data_label.text()
    meta = load_model(out).metadata["training"]
    assert meta["start_model"]["file"] == "start.zfm" and meta["steps"] == 2
    assert widget.start_combo.isEnabled() and not widget.field_spin.isEnabled()
