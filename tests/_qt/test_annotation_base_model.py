"""The annotation dock's "Use base model": the base model's suggestion (the slice whose
predicted z is nearest 0) beside the bright-field one; disabled when none is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("torch")

from _tiny import write_untrained_model
from napari_zfocus._qt.annotation_widget import AnnotationWidget
from napari_zfocus.data import read_stack
from napari_zfocus.model import base_model
from napari_zfocus.model.inference import Predictor
from napari_zfocus.simulation import SimulationParams, simulate_dataset


@pytest.fixture(scope="module")
def stacks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("base_stacks")
    params = SimulationParams(shape=(64, 64), n_slices=11, z_step_um=0.5, pixel_size_um=0.24)
    simulate_dataset(folder, 2, seed=4, params=params)
    (folder / "annotations.csv").unlink()
    return folder


def _widget(make_napari_viewer) -> AnnotationWidget:
    viewer = make_napari_viewer()
    widget = AnnotationWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def test_without_a_base_model_the_button_is_disabled_and_says_why(make_napari_viewer,
                                                                  tmp_path, monkeypatch):
    monkeypatch.setattr(base_model, "BASE_MODEL", tmp_path / "base_model.zfm")
    button = _widget(make_napari_viewer).controls.base_model_button
    assert not button.isEnabled() and "no base model" in button.toolTip()


def test_the_base_models_suggestion_is_the_slice_nearest_z_0(make_napari_viewer, qtbot,
                                                              stacks, tmp_path, monkeypatch):
    base = write_untrained_model(tmp_path / "base_model.zfm", seed=3)
    monkeypatch.setattr(base_model, "BASE_MODEL", base)
    widget = _widget(make_napari_viewer)
    button = widget.controls.base_model_button
    assert button.isEnabled()
    assert widget.open_folder(stacks)
    button.click()
    qtbot.waitUntil(lambda: widget.suggestions.predictor is not None, timeout=20_000)
    assert "base_model.zfm" in widget.controls.model_label.text()
    entry = widget.state.entries[0]
    qtbot.waitUntil(lambda: entry.suggestion_source == "model", timeout=20_000)
    stack = read_stack(stacks / entry.name, z_step_um=0.5, pixel_size_um=0.24)
    z = [p.z_um for p in Predictor.from_file(base).predict_batch(stack.to_numpy(), 0.24)]
    assert entry.suggested_index == int(np.argmin(np.abs(z)))
    widget.shutdown()
