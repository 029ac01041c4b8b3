"""A model's distance scale: fitted from unannotated stacks, stored, applied, refused when bad."""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from _model_files import read_raw, rewrite_model
from _tiny import write_untrained_model
from napari_zfocus.data import ZStack
from napari_zfocus.errors import ModelFileError, ZFocusError
from napari_zfocus.inspection.display import describe_model
from napari_zfocus.model.distance_scale import (
    GAIN_RANGE,
    DistanceScale,
    StackGain,
    fit_distance_scale,
    fit_stack_gain,
    iter_measure_distance_scale,
    measure_distance_scale,
)
from napari_zfocus.model.inference import Predictor
from napari_zfocus.model.io import load_model, save_rescaled_copy


def model_reading(n: int, step: float, focus_index: float, gain: float, *,
                  limit: float = 15.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """What a model with ``gain`` reads on a stack: right sign, saturating at its range."""
    z = (np.arange(n) - focus_index) * step
    r = np.clip(gain * z, -limit, limit)
    return r + np.random.default_rng(seed).normal(0, noise, n)


@pytest.mark.parametrize("gain", [0.6, 0.74, 1.0, 1.21, 1.6])
@pytest.mark.parametrize("focus_index", [9.0, 15.0, 21.4])
def test_the_slope_near_focus_is_the_gain_whatever_saturates_far_away(gain, focus_index):
    reads = model_reading(31, 1.0, focus_index, gain, noise=0.3, seed=int(gain * 100))
    fit = fit_stack_gain(reads, 1.0)
    assert fit.gain == pytest.approx(gain, rel=0.05)
    assert fit.focus_um == pytest.approx(focus_index, abs=0.5)
    assert fit.slices >= 12 and fit.reason == ""
    # A line through the whole stack is dragged down by the saturated ends.
    if gain == 1.6:
        whole = np.polyfit(np.arange(31.0), reads, 1)[0]
        assert whole < 0.85 * gain


def test_the_window_is_in_micrometres_not_slices():
    fine = fit_stack_gain(model_reading(61, 0.5, 30, 1.3), 0.5)
    coarse = fit_stack_gain(model_reading(16, 2.0, 8, 1.3), 2.0)
    assert fine.gain == pytest.approx(1.3, rel=0.01) == coarse.gain
    # +/- 8 um either way: 16 um of slices, whatever their spacing
    assert abs(fine.slices * 0.5 - 16) <= 0.5 and abs(coarse.slices * 2.0 - 16) <= 2


def test_a_stack_that_cannot_give_a_slope_says_why():
    short = fit_stack_gain(model_reading(4, 1.0, 2, 1.0), 1.0)
    assert math.isnan(short.gain) and "fewer than 5 slices" in short.reason
    backwards = fit_stack_gain(-model_reading(31, 1.0, 15, 1.0), 1.0)
    assert math.isnan(backwards.gain) and "do not increase" in backwards.reason
    flat = fit_stack_gain(np.zeros(31), 1.0)
    assert math.isnan(flat.gain)
    unread = fit_stack_gain(np.full(31, np.nan), 1.0)
    assert math.isnan(unread.gain)
    with pytest.raises(ZFocusError, match="z-step"):
        fit_stack_gain(np.zeros(31), 0.0)


def test_nan_readings_are_left_out_of_the_fit():
    reads = model_reading(31, 1.0, 15, 1.2)
    reads[[3, 14, 16]] = np.nan
    assert fit_stack_gain(reads, 1.0).gain == pytest.approx(1.2, rel=1e-6)


def test_the_scale_is_the_median_of_the_stacks_and_records_them():
    gains = [StackGain(1.2, 17, 15.0), StackGain(1.3, 17, 14.0), StackGain(math.nan, 2,
                                                                            math.nan, "few")]
    scale = fit_distance_scale(gains, ["a.tif", "b.tif", "c.tif"], source="test")
    assert scale.gain == pytest.approx(1.25)
    f = scale.fitted
    assert f["stacks"] == 3 and f["stacks_fitted"] == 2 and f["applied"] is True
    # sd 0.071 over 2 stacks: standard error 1.25 x 0.071 / sqrt(2), 3 of them to pass
    assert f["standard_error"] == pytest.approx(0.0625, abs=1e-3)
    assert f["threshold"] == pytest.approx(0.1875, abs=1e-3)
    assert f["per_stack"][2] == {"stack": "c.tif", "gain": None, "slices": 2, "reason": "few"}
    mixed = fit_distance_scale([StackGain(0.9, 17, 1.0), StackGain(1.3, 17, 1.0)], ["a", "b"])
    assert mixed.gain == 1.0 and mixed.fitted["applied"] is False  # 1.1, but sd 0.28


def test_a_gain_within_the_stacks_scatter_of_1_is_no_change():
    near = fit_distance_scale([StackGain(1.03, 17, 1.0), StackGain(1.02, 17, 1.0)], ["a", "b"])
    assert near.gain == 1.0 and near.fitted["measured_gain"] == pytest.approx(1.025)
    assert near.fitted["applied"] is False
    assert near.fitted["threshold"] == pytest.approx(3 * 1.25 * 0.03 / 2 ** 0.5, abs=1e-4)
    # Three stacks that agree: 10 % is a change. One stack cannot show its scatter, so it
    # needs a larger one.
    agree = [StackGain(0.9, 17, 1.0), StackGain(0.91, 17, 1.0), StackGain(0.9, 17, 1.0)]
    assert fit_distance_scale(agree, ["a", "b", "c"]).gain == pytest.approx(0.9)
    assert fit_distance_scale(agree[:1], ["a"]).gain == 1.0
    assert fit_distance_scale([StackGain(0.74, 17, 1.0)], ["a"]).gain == pytest.approx(0.74)


def test_no_fit_or_a_gain_beyond_a_rescale_is_refused_with_the_reason():
    with pytest.raises(ZFocusError, match=r"no stack gave a distance scale \(a.tif: few"):
        fit_distance_scale([StackGain(math.nan, 2, math.nan, "few")], ["a.tif"])
    for g in (GAIN_RANGE[0] * 0.9, GAIN_RANGE[1] * 1.1):
        with pytest.raises(ZFocusError, match="fine-tune"):
            fit_distance_scale([StackGain(g, 17, 1.0)], ["a"])


@pytest.mark.parametrize("entry, match", [
    ({"version": 1, "gain": float("nan")}, "gain"),
    ({"version": 1, "gain": "1.2"}, "gain"),
    ({"version": 1, "gain": 0.0}, "gain"),
    ({"version": 1, "gain": 5.0}, "gain"),
    ({"version": 1}, "gain"),
    ({"version": 2, "gain": 1.0}, "newer"),
    ({"gain": 1.0}, "version"),
    ([1.0], "JSON object"),
    ({"version": 1, "gain": 1.0, "fitted": []}, "fitted"),
])
def test_a_bad_entry_is_one_line_naming_it(entry, match):
    with pytest.raises(ZFocusError, match=match):
        DistanceScale.from_dict(entry)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_untrained_model(tmp_path_factory.mktemp("scale") / "m.zfm")


def test_a_rescaled_copy_keeps_everything_but_adds_the_scale(model, tmp_path):
    out = save_rescaled_copy(model, DistanceScale(1.25, {"stacks": 3}), tmp_path / "r.zfm")
    before, after = read_raw(model), read_raw(out)
    assert all(np.array_equal(before[1][k], after[1][k]) for k in before[1])
    assert before[0]["config"] == after[0]["config"]
    loaded = load_model(out)
    assert loaded.distance_scale == DistanceScale(1.25, {"stacks": 3})
    assert loaded.info["distance_scale"] == 1.25
    assert dict(describe_model(loaded.config, loaded.metadata, loaded.info))["distances"] == \
        "rescaled: readings divided by 1.25 (zfocus rescale)"
    assert load_model(model).distance_scale is None
    assert "distances" not in dict(describe_model(loaded.config, {}, load_model(model).info))
    unchanged = load_model(save_rescaled_copy(model, DistanceScale(1.0), tmp_path / "u.zfm"))
    assert dict(describe_model(unchanged.config, {}, unchanged.info))["distances"] == \
        "as trained (zfocus rescale measured no change)"
    # and it comes off again
    plain = save_rescaled_copy(out, None, tmp_path / "plain.zfm")
    assert load_model(plain).distance_scale is None


def test_an_edited_scale_is_refused(model, tmp_path):
    scaled = save_rescaled_copy(model, DistanceScale(1.25), tmp_path / "r.zfm")
    edited = json.dumps({"version": 1, "gain": 1.0, "fitted": {}})
    naive = rewrite_model(scaled, tmp_path / "naive.zfm", distance_scale=edited)
    with pytest.raises(ModelFileError, match="integrity check failed"):
        load_model(naive)
    bad = json.dumps({"version": 1, "gain": -1.0, "fitted": {}})
    resealed = rewrite_model(scaled, tmp_path / "resealed.zfm", distance_scale=bad,
                             reseal="v2")
    with pytest.raises(ModelFileError, match="invalid distance scale.*gain"):
        load_model(resealed)
    v1 = rewrite_model(scaled, tmp_path / "v1.zfm", reseal="v1")
    with pytest.raises(ModelFileError, match="version 1 file cannot hold a distance scale"):
        load_model(v1)


def test_the_predictor_divides_distances_and_keeps_confidence(model, tmp_path):
    scaled = save_rescaled_copy(model, DistanceScale(1.6), tmp_path / "r.zfm")
    image = np.random.default_rng(3).integers(100, 4000, (60, 60)).astype(np.uint16)
    plain, rescaled = Predictor.from_file(model), Predictor.from_file(scaled)
    assert plain.gain == 1.0 and rescaled.gain == 1.6
    a, b = plain.predict(image, 0.24), rescaled.predict(image, 0.24)
    assert b.z_um == pytest.approx(a.z_um / 1.6)
    assert b.z_argmax_um == pytest.approx(a.z_argmax_um / 1.6)
    assert np.allclose(b.bin_centres_um, a.bin_centres_um / 1.6)
    assert b.confidence == a.confidence and np.array_equal(a.softmax, b.softmax)
    tiles = rescaled.predict_tiles(np.tile(image, (2, 2)), 0.24)
    assert np.allclose(tiles.bin_centres_um, rescaled.bin_centres_um)


class _Reader:
    """A predictor that reads ``gain`` x the true z of the stack slices it is given."""

    def __init__(self, gain: float, own_gain: float = 1.0) -> None:
        self.gain, self._true_gain = own_gain, gain

    def predict_batch(self, images, pixel_size_um):
        focus = len(images) // 2
        return [SimpleNamespace(z_um=np.clip(self._true_gain * (i - focus), -15, 15)
                                / self.gain) for i in range(len(images))]


def _stack(z_step=1.0, px=0.24, path=None):
    return ZStack(np.zeros((31, 8, 8), np.uint16), z_step, px, path=path)


def test_measure_undoes_a_scale_the_model_already_has():
    stacks = [_stack(), _stack()]
    assert measure_distance_scale(_Reader(1.3), stacks).gain == pytest.approx(1.3)
    # A model rescaled before (x1.3) and moved again: the new scale replaces the old one.
    assert measure_distance_scale(_Reader(0.8, own_gain=1.3), stacks).gain == \
        pytest.approx(0.8)


def test_measure_names_a_stack_without_its_spacing(tmp_path):
    progress = []
    gen = iter_measure_distance_scale(_Reader(1.0), [_stack(path=tmp_path / "a.tif"),
                                                     _stack(None, path=tmp_path / "b.tif")])
    with pytest.raises(ZFocusError, match=r"b\.tif: its z-step is unknown"):
        progress.extend(gen)
    assert progress == [(1, 2)]
    with pytest.raises(ZFocusError, match="pixel size is unknown"):
        measure_distance_scale(_Reader(1.0), [_stack(px=None)])


def test_measuring_reports_progress_and_stops_when_cancelled():
    stacks = [_stack(), _stack(), _stack()]
    gen = iter_measure_distance_scale(_Reader(1.3), stacks)
    assert list(itertools.islice(gen, 3)) == [(1, 3), (2, 3), (3, 3)]
    asked = []
    gen = iter_measure_distance_scale(_Reader(1.3), stacks, cancel=lambda: len(asked) >= 1)
    asked.append(next(gen))
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value is None
