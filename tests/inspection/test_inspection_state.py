"""The inspection dock's state without Qt: signals, coalesced predictions, cancel, checks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.inspection_state import (
    InspectionState,
    JobSlot,
    MapGeometry,
)
from napari_zfocus.inspection.job_summaries import (
    calibration_summary,
    evaluation_summary,
    rescale_summary,
)
from napari_zfocus.inspection.jobs import Calibrated, LoadedModel, Rescaled


def _model(path: str = "m.zfm") -> LoadedModel:
    predictor = SimpleNamespace(config=SimpleNamespace(pixel_size_um=0.24))
    return LoadedModel(Path(path), predictor, "summary")


def _ready(layer: str = "img") -> InspectionState:
    state = InspectionState()
    state.begin_loading("m.zfm")
    state.model_loaded(_model())
    state.set_layer(layer, None)
    return state


def test_newest_model_load_wins_and_a_failure_keeps_the_old_model():
    state = InspectionState()
    loaded: list[LoadedModel] = []
    state.model_changed.connect(loaded.append)
    with pytest.raises(ZFocusError, match="model file path"):
        state.begin_loading("  ")
    state.begin_loading("a.zfm")
    state.begin_loading("b.zfm")  # the user picked another file meanwhile
    assert not state.model_loaded(_model("a.zfm"))  # late answer of the first load: dropped
    assert state.model_loaded(_model("b.zfm"))
    assert [m.path.name for m in loaded] == ["b.zfm"] and state.loading is None
    state.begin_loading("c.zfm")
    state.loading_failed(Path("c.zfm"))
    assert state.model.path.name == "b.zfm" and state.loading is None


def test_controls_follow_model_layer_and_jobs():
    state = InspectionState()
    seen: list[int] = []
    state.jobs_changed.connect(lambda: seen.append(1))
    c = state.controls()
    assert not (c.predict or c.focus_map or c.evaluate or c.export)
    state.begin_loading("m.zfm")
    state.model_loaded(_model())
    assert state.controls().evaluate and not state.controls().predict  # no layer yet
    state.set_layer("img", 0.5)
    assert state.controls().predict and state.controls().focus_map
    assert seen  # every change told the view


def test_predictions_asked_while_one_runs_are_coalesced_into_one():
    state = _ready()
    got: list[object] = []
    state.prediction_changed.connect(got.append)
    assert state.request_prediction()
    state.prediction_started()
    assert not state.controls().predict
    for _ in range(5):  # a slider dragged over five slices meanwhile
        assert not state.request_prediction()
    state.set_prediction("p1")
    assert state.prediction_finished() is True  # exactly one more run
    assert state.request_prediction()
    state.prediction_started()
    assert state.prediction_finished() is False
    assert got == ["p1"] and state.last_prediction == "p1"


def test_a_job_slot_announces_start_and_end_and_cancels_only_a_running_job():
    changes: list[int] = []
    slot = JobSlot(lambda: changes.append(1))
    assert not slot.running and slot.cancel() is False and changes == []
    event = slot.start()
    assert slot.running and not event.is_set() and len(changes) == 1
    assert slot.cancel() is True and event.is_set()
    slot.finished()
    assert not slot.running and slot.cancel() is False and len(changes) == 2


def test_focus_map_runs_once_and_cancels():
    state = _ready()
    maps: list[tuple] = []
    state.focus_map_changed.connect(lambda m, g: maps.append((m, g)))
    cancel = state.start_focus_map()
    assert cancel is not None and state.start_focus_map() is None  # one at a time
    assert state.controls().cancel_focus_map and not state.controls().focus_map
    state.cancel_focus_map()
    assert cancel.is_set()
    state.focus_map_finished()
    assert not state.map_job.running and state.controls().focus_map
    geometry = MapGeometry("img", (0.24, 0.24), (0.0, 0.0))
    state.set_focus_map("map", geometry)
    assert maps == [("map", geometry)] and state.focus_map == "map"


def test_evaluation_checks_runs_once_and_close_cancels_everything(tmp_path):
    state = InspectionState()
    with pytest.raises(ZFocusError, match="Load a model"):
        state.start_evaluation(str(tmp_path))
    state = _ready()
    with pytest.raises(ZFocusError, match="dataset folder"):
        state.start_evaluation("  ")
    with pytest.raises(ZFocusError, match="nowhere: no such folder"):
        state.start_evaluation(str(tmp_path / "nowhere"))
    folder, cancel = state.start_evaluation(f" {tmp_path} ")
    assert folder == str(tmp_path) and state.start_evaluation(str(tmp_path)) is None
    assert not state.controls().evaluate and state.controls().cancel_evaluation
    map_cancel = state.start_focus_map()
    state.close()
    assert cancel.is_set() and map_cancel.is_set()
    state.evaluation_finished()
    with pytest.raises(ZFocusError, match="Nothing to export"):
        state.check_export()
    result = SimpleNamespace(metrics={"n_images": 14, "within_1um": 0.5}, cancelled=True)
    state.set_evaluation(result)
    state.check_export()
    assert state.controls().export
    assert evaluation_summary(result) == "14 images (cancelled: partial result); 50% within +/-1 um"


def test_unknown_pixel_size_assumes_the_models_and_warns_once_per_layer():
    state = _ready("a")
    assert state.pixel_size_for_prediction()[0] == 0.24
    assert state.pixel_size_for_prediction() == (0.24, None)  # warned already
    state.set_layer("b", None)
    px, warning = state.pixel_size_for_prediction()
    assert warning is not None and warning.startswith("b: pixel size unknown")
    state.set_pixel_size(0.5)
    assert state.pixel_size_for_prediction() == (0.5, None)


def test_rescale_checks_runs_once_cancels_and_uses_the_new_model(tmp_path):
    state = InspectionState()
    stack = tmp_path / "s.tif"
    stack.write_bytes(b"")
    with pytest.raises(ZFocusError, match="Load a model"):
        state.start_rescale([stack], tmp_path / "r.zfm")
    state = _ready()
    with pytest.raises(ZFocusError, match="Add z-stacks"):
        state.start_rescale([], tmp_path / "r.zfm")
    with pytest.raises(ZFocusError, match="gone.tif: no such stack"):
        state.start_rescale([stack, tmp_path / "gone.tif"], tmp_path / "r.zfm")
    model, stacks, out, cancel = state.start_rescale([str(stack)], tmp_path / "r.zfm")
    assert model == Path("m.zfm") and stacks == [stack] and out == tmp_path / "r.zfm"
    assert state.start_rescale([stack], tmp_path / "r.zfm") is None  # one at a time
    assert not state.controls().rescale and state.controls().cancel_rescale
    state.close()
    assert cancel.is_set()
    state.rescale_finished()
    assert state.controls().rescale
    state.set_rescaled(None)  # cancelled: the old model stays
    assert state.model.path == Path("m.zfm")
    scale = SimpleNamespace(gain=0.74, fitted={"measured_gain": 0.74, "stacks": 3,
                                               "stacks_fitted": 3, "applied": True,
                                               "threshold": 0.07})
    rescaled = Rescaled(_model(str(tmp_path / "r.zfm")), scale)
    seen: list[LoadedModel] = []
    state.model_changed.connect(seen.append)
    state.set_rescaled(rescaled)
    assert state.model.path == tmp_path / "r.zfm" and seen == [rescaled.loaded]
    assert rescale_summary(rescaled) == (
        f"Reads 0.74x the true distance on 3 of 3 stacks: readings divided by 0.74. Saved as "
        f"{tmp_path / 'r.zfm'} and loaded.")
    assert rescale_summary(None) == "Cancelled: nothing written."


def test_calibration_checks_runs_once_cancels_and_uses_the_new_model(tmp_path):
    state = InspectionState()
    with pytest.raises(ZFocusError, match="Load a model"):
        state.start_calibration(str(tmp_path), tmp_path / "c.zfm")
    state = _ready()
    with pytest.raises(ZFocusError, match="annotated held-out stacks"):
        state.start_calibration(" ", tmp_path / "c.zfm")
    with pytest.raises(ZFocusError, match="nowhere: no such folder"):
        state.start_calibration(str(tmp_path / "nowhere"), tmp_path / "c.zfm")
    model, folder, out, cancel = state.start_calibration(f" {tmp_path} ", tmp_path / "c.zfm")
    assert (model, folder, out) == (Path("m.zfm"), tmp_path, tmp_path / "c.zfm")
    assert state.start_calibration(str(tmp_path), tmp_path / "c.zfm") is None  # one at a time
    assert not state.controls().calibrate and state.controls().cancel_calibration
    assert state.controls().rescale  # the other jobs are not blocked
    state.close()
    assert cancel.is_set()
    state.calibration_finished()
    assert state.controls().calibrate and not state.controls().cancel_calibration
    state.set_calibrated(None)  # cancelled: the old model stays
    assert state.model.path == Path("m.zfm")
    calibration = SimpleNamespace(temperature=0.19, fitted={
        "ece_uncalibrated": 0.131, "ece_in_sample": 0.019, "images": 2790,
        "source": "dataset held_out", "ood_reference_images": 2790, "flagged": 0.021})
    calibrated = Calibrated(_model(str(tmp_path / "c.zfm")), calibration)
    state.set_calibrated(calibrated)
    assert state.model.path == tmp_path / "c.zfm"
    line = calibration_summary(calibrated)
    assert line.startswith("temperature 0.19; ECE 0.131 uncalibrated -> 0.019 on its 2790 "
                           "images of the dataset held_out")
    assert line.endswith(f"Saved as {tmp_path / 'c.zfm'} and loaded.")
    assert calibration_summary(None) == "Cancelled: nothing written."
