"""Qt-free helpers of the inspection dock."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.display import (
    describe_model,
    describe_model_text,
    displayed_plane,
    focus_map_transform,
    pixel_size_from_layer,
    prediction_texts,
    tile_index,
)
from napari_zfocus.inspection.metrics_table import (
    METRIC_ROWS,
    metrics_table,
    text_table,
    write_metrics_csv,
)
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.inference import FocusMap


def _focus_map(rows=2, cols=3, tile=50, stride=40, px=0.5) -> FocusMap:
    shape = (rows, cols)
    return FocusMap(
        z_um=np.zeros(shape), z_argmax_um=np.zeros(shape), confidence=np.ones(shape),
        entropy=np.zeros(shape), bimodal=np.zeros(shape, bool), softmax=np.ones((*shape, 5)) / 5,
        bin_centres_um=np.arange(-2.0, 3.0), tops=3 + stride * np.arange(rows),
        lefts=1 + stride * np.arange(cols), tile_px=tile, stride_px=stride, field_px=tile,
        pixel_size_um=px, image_shape=(200, 200),
    )


def test_describe_model_lists_geometry_training_and_validation() -> None:
    config = ModelConfig(field_um=12, pixel_size_um=0.24, conv_features=(4, 8), fc_features=32)
    meta = {"training": {"steps": 12, "train_stacks": 5, "val_stacks": ["a", "b"], "elapsed_s": 90,
                         "device": "cpu",
                         "validation": {"median_abs_error_um": 0.71, "within_1um": 0.6}},
            "note": "hello"}
    info = {"created_utc": "2026-11-23", "napari_zfocus_version": "0.1"}
    rows = dict(describe_model(config, meta, info))
    assert rows["field"] == "12 um at 0.24 um/px (50 px)"
    assert rows["z bins"].startswith("41 x 1 um")
    assert "12 steps" in rows["training"] and "2 validation stacks" in rows["training"]
    assert rows["validation"] == "median |error| 0.71 um, 60% within 1 um"
    assert rows["note"] == "hello" and "2026-11-23" in rows["file"]
    assert dict(describe_model(config))["training"] == "no training record in the file"
    assert "confidence" not in rows  # a file read before calibration existed
    calibrated = dict(describe_model(config, meta, dict(info, calibrated=True)))
    assert calibrated["confidence"].startswith("calibrated: P(within +/-1 um)")
    plain = dict(describe_model(config, meta, dict(info, calibrated=False)))
    assert plain["confidence"].startswith("uncalibrated")


@pytest.mark.parametrize(
    ("scale", "meta", "units", "expected"),
    [
        ((1.0, 1.0), {}, None, None),  # napari default: unknown
        ((1.0, 0.3), {}, None, 0.3),
        ((1.0, 1.0), {"pixel_size_um": 0.06}, None, 0.06),
        ((1.0, 1.0), {"pixel_size_um": None}, None, None),
        ((1.0, 1.0), {}, ("um", "um"), 1.0),  # a real 1 um pixel, says the unit
        ((2.0, 0.2), {"pixel_size_um": "junk"}, None, 0.2),
    ],
)
def test_pixel_size_from_layer(scale, meta, units, expected) -> None:
    assert pixel_size_from_layer(scale, meta, units) == expected


def test_displayed_plane_picks_rounded_clipped_leading_index() -> None:
    data = np.arange(4 * 3 * 2).reshape(4, 3, 2)
    np.testing.assert_array_equal(displayed_plane(data, (2.4, 0, 0)), data[2])
    np.testing.assert_array_equal(displayed_plane(data, (9.0, 0, 0)), data[3])
    np.testing.assert_array_equal(displayed_plane(data, (-3.0, 0, 0)), data[0])
    np.testing.assert_array_equal(displayed_plane(data[0], (1.0, 1.0)), data[0])
    with pytest.raises(ZFocusError, match="RGB"):
        displayed_plane(data, (0, 0, 0), rgb=True)
    with pytest.raises(ZFocusError, match="1-D"):
        displayed_plane(np.zeros(5), (0,))


def test_focus_map_transform_maps_tile_centres_onto_image_world() -> None:
    fmap = _focus_map()
    scale, translate = focus_map_transform(fmap, (0.5, 0.25), (10.0, -4.0))
    cy, cx = fmap.centres_px()
    for i in range(2):
        for j in range(3):
            world_map = np.add(translate, np.multiply(scale, (i, j)))
            world_image = np.add((10.0, -4.0), np.multiply((0.5, 0.25), (cy[i], cx[j])))
            np.testing.assert_allclose(world_map, world_image)


def test_tile_index_bounds() -> None:
    assert tile_index((0.4, 2.4), (2, 3)) == (0, 2)
    assert tile_index((5.0, 1.3, 0.6), (2, 3)) == (1, 1)  # leading axes ignored
    assert tile_index((2.0, 0.0), (2, 3)) is None
    assert tile_index((-0.6, 0.0), (2, 3)) is None
    assert tile_index((np.nan, 0.0), (2, 3)) is None


def test_metrics_table_and_csv(tmp_path) -> None:
    cnn = {"n_images": 10, "within_1um": 0.5, "median_abs_error_um": 1.0, "sign_accuracy": 0.9}
    result = SimpleNamespace(
        metrics={**cnn, "argmax": {"n_images": 10, "within_1um": 0.4}},
        baselines={"brenner": {"n_images": 10, "within_1um": 0.1, "sign_accuracy": None}},
    )
    methods, headers, cells = metrics_table(result)
    assert methods == ["CNN", "CNN argmax", "brenner"]
    assert headers == [short for _, short, _ in METRIC_ROWS]
    assert cells[0][:3] == ["10", "50%", "1"] and cells[0][-1] == "90%" and cells[2][-1] == "-"
    path = write_metrics_csv(result, tmp_path / "m.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "metric,CNN,CNN argmax,brenner"
    assert lines[2] == "within_1um,0.5,0.4,0.1"
    assert lines[-1] == "sign_accuracy,0.9,,"


def test_model_text_aligns_labels() -> None:
    text = describe_model_text([("field", "12 um"), ("architecture", "x")])
    assert text.splitlines() == ["field         12 um", "architecture  x"]


def test_cli_text_table_always_has_the_argmax_column_and_baseline_note() -> None:
    summary = {"n_images": 4, "within_1um": 0.5, "sign_accuracy": None,
               "baselines": {"brenner": {"n_images": 4, "bias_um": 0.25}}}
    lines = text_table(summary).splitlines()
    assert lines[0].split() == ["metric", "CNN", "CNN", "argmax", "brenner"]
    assert lines[1].split() == ["images", "4", "n/a", "4"]
    assert lines[3].split()[-3:] == ["50.0%", "n/a", "n/a"]
    assert lines[5].split()[-1] == "+0.25"
    assert lines[-1].startswith("(baselines:")
    assert "baselines" not in text_table({"n_images": 1})


def test_prediction_texts_say_what_the_confidence_is() -> None:
    base = dict(z_um=1.234, z_argmax_um=1.0, confidence=0.876, bimodal=False)
    plain = prediction_texts(SimpleNamespace(**base))
    assert plain["confidence"] == "0.88 (uncalibrated)" and plain["z"] == "+1.23 um"
    cal = prediction_texts(SimpleNamespace(**base, calibrated=True, ood=False))
    assert cal["confidence"] == "0.88 (P within +/-1 um)"
    ood = prediction_texts(SimpleNamespace(**base, calibrated=True, ood=True, ood_score=3.21))
    assert ood["confidence"] == "0.88, OUT OF DISTRIBUTION (score 3.2)"
