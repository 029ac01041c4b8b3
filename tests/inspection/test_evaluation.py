"""Evaluation metrics, the evaluation loop (with a fake predictor), baselines and plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from _tiny import TINY
from napari_zfocus.inspection.baselines import (
    fit_profile_mapping,
    iqa_profile_predict,
    normalise_profile,
)
from napari_zfocus.inspection.evaluation import (
    EvalProgress,
    compute_metrics,
    confusion_matrix,
    errors_by_true_z,
    evaluate,
    iter_evaluate,
)
from napari_zfocus.inspection.plots import save_evaluation_plots, training_curves
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.inference import Prediction


def test_metrics_on_known_errors() -> None:
    true = np.array([-3.0, -1.0, 0.0, 0.2, 1.0, 3.0])
    pred = true + np.array([0.5, -2.0, 0.2, 0.0, 1.0, -4.0])  # last: wrong side of focus
    m = compute_metrics(true, pred, bin_um=1.0)
    assert m["n_images"] == 6
    assert m["median_abs_error_um"] == pytest.approx(0.75)
    assert m["within_1um"] == pytest.approx(4 / 6)  # an error of exactly 1 um counts
    assert m["mse_um2"] == pytest.approx((0.25 + 4 + 0.04 + 0 + 1 + 16) / 6)
    assert m["bias_um"] == pytest.approx(-4.3 / 6)
    # |z| < 0.5 (0.0 and 0.2) excluded; -3, -1, 1 right; 3 -> -1 wrong
    assert m["sign_accuracy"] == pytest.approx(3 / 4)
    assert compute_metrics([], [])["n_images"] == 0
    assert compute_metrics(true, pred, sign=False)["sign_accuracy"] is None


def test_confusion_rows_are_normalised_and_errors_by_z() -> None:
    config = ModelConfig(**TINY)
    true = np.array([0.0, 0.0, 0.0, 2.0])
    pred = np.array([0.1, 0.9, 1.2, -2.0])
    c = confusion_matrix(true, pred, config)
    i0, i1, i2, im2 = (config.z_to_bin(z) for z in (0, 1, 2, -2))
    assert c[i0, i0] == pytest.approx(1 / 3) and c[i0, i1] == pytest.approx(2 / 3)
    assert c[i2, im2] == 1.0
    assert np.allclose(c.sum(axis=1)[[i0, i2]], 1.0) and c.sum() == pytest.approx(2.0)
    by = errors_by_true_z(true, pred)
    assert by["z_um"] == [0.0, 2.0] and by["n"] == [3, 1]
    assert by["median_abs_error_um"][0] == pytest.approx(0.9)


# -- fakes: slice i of a stack is a constant image of value i --------------------------
@dataclass
class FakeAnnotation:
    stack: str
    focus_index: int
    z_step_um: float = 1.0
    pixel_size_um: float = 0.24


class FakeStack:
    def __init__(self, n: int) -> None:
        self.n_slices = n

    def slice(self, i: int) -> np.ndarray:
        return np.full((60, 60), float(i), np.float32)


@dataclass
class FakeDataset:
    annotations: list = field(default_factory=list)

    def open_stack(self, a: FakeAnnotation) -> FakeStack:
        return FakeStack(31)


class FakePredictor:
    """Reads z from the image value (slice index) with a known error."""

    def __init__(self, error: float) -> None:
        self.config = ModelConfig(**TINY)
        self.error = error
        self.calls = 0

    def predict_batch(self, images, pixel_size_um):
        self.calls += 1
        bins = self.config.bin_centres_um
        out = []
        for img in images:
            z = float(img[0, 0]) - 10 + self.error  # every fake stack has focus at slice 10
            out.append(
                Prediction(
                    z, float(np.round(z)), 0.9, 0.1, False, np.full(len(bins), 1 / len(bins)), bins
                )
            )
        return out


def _dataset(n_stacks: int = 3) -> FakeDataset:
    return FakeDataset([FakeAnnotation(f"s{i}.tif", 10) for i in range(n_stacks)])


def test_evaluate_uses_slices_in_the_z_range_and_known_errors() -> None:
    events: list[EvalProgress] = []
    res = evaluate(FakePredictor(0.5), _dataset(), progress=events.append, batch_size=4)
    # z range -5..5 um with 1 um steps: slices 5..15 of each stack = 11 images x 3 stacks
    assert res.metrics["n_images"] == 33
    assert res.metrics["median_abs_error_um"] == pytest.approx(0.5)
    assert res.metrics["within_1um"] == 1.0
    assert res.metrics["bias_um"] == pytest.approx(0.5)
    assert res.metrics["mse_um2"] == pytest.approx(0.25)
    assert sorted(set(res.per_image["z_true_um"])) == list(np.arange(-5.0, 6.0))
    assert events[0].done == 0 and events[-1].done == events[-1].total == 33
    assert res.to_json_dict()["n_images"] == 33 and not res.cancelled


def test_ece_and_flagged_of_known_confidences_and_flags() -> None:
    class Flagging(FakePredictor):
        """Confidence 0.9 everywhere; odd slices out of distribution."""

        def predict_batch(self, images, pixel_size_um):
            preds = super().predict_batch(images, pixel_size_um)
            for img, p in zip(images, preds, strict=True):
                p.ood = int(img[0, 0]) % 2 == 1
            return preds

    res = evaluate(Flagging(0.5), _dataset(2))  # every error 0.5 um: all within 1 um
    assert res.metrics["ece"] == pytest.approx(0.1)  # confidence 0.9, 100 % right
    assert res.metrics["flagged"] == pytest.approx(6 / 11)  # slices 5, 7, ..., 15 of 5..15
    assert res.per_image["flagged"].tolist() == [i % 2 == 1 for i in range(5, 16)] * 2
    res = evaluate(FakePredictor(1.5), _dataset(1))  # all wrong at confidence 0.9
    assert res.metrics["ece"] == pytest.approx(0.9) and res.metrics["flagged"] == 0.0
    assert res.to_json_dict()["ece"] == pytest.approx(0.9)


def test_cancel_stops_early_with_a_partial_result() -> None:
    gen = iter_evaluate(FakePredictor(0.0), _dataset(), cancel=lambda: True)
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    res = stop.value.value
    assert res.cancelled and res.metrics["n_images"] == 0


def test_image_smaller_than_the_field_names_the_stack(monkeypatch) -> None:
    from napari_zfocus.errors import ZFocusError
    from napari_zfocus.model.preprocess import prepare

    class Predictor(FakePredictor):
        def predict_batch(self, images, pixel_size_um):
            return [prepare(im, pixel_size_um, self.config) for im in images]

    monkeypatch.setattr(FakeStack, "slice", lambda self, i: np.zeros((20, 20), np.float32))
    with pytest.raises(ZFocusError, match=r"s0\.tif: image is 20 x 20 px"):
        evaluate(Predictor(0.0), _dataset(1))


def test_iqa_profile_baseline_with_oracle_sign() -> None:
    # score falls linearly with |z|: leave-one-out mapping recovers |z| exactly
    scores = {"minus_abs": lambda img: -abs(float(img.mean()) - 10.0)}
    res = evaluate(FakePredictor(2.0), _dataset(3), baselines=True, score_functions=scores)
    b = res.baselines["minus_abs"]
    assert b["n_images"] == 33 and b["sign_accuracy"] is None
    assert b["median_abs_error_um"] < 0.3
    assert res.metrics["median_abs_error_um"] == pytest.approx(2.0)


def test_profile_mapping_helpers() -> None:
    assert normalise_profile(np.array([2.0, 4.0, 6.0])).tolist() == [0.0, 0.5, 1.0]
    assert normalise_profile(np.ones(3)).tolist() == [0.5, 0.5, 0.5]
    m = fit_profile_mapping(np.array([0.0, 0.5, 1.0]), np.array([10.0, 5.0, 0.0]))
    assert m(np.array([0.75])) == pytest.approx([2.5])
    z = np.arange(-3.0, 4.0)
    pred = iqa_profile_predict([-np.abs(z), -np.abs(z)], [z, z])
    np.testing.assert_allclose(pred[0], z, atol=1e-9)  # sign from the truth (oracle)


def test_plots_and_csvs_are_written(tmp_path: Path) -> None:
    res = evaluate(
        FakePredictor(0.5),
        _dataset(2),
        baselines=True,
        score_functions={"s": lambda img: -abs(float(img.mean()) - 10.0)},
    )
    files = save_evaluation_plots(res, tmp_path / "plots")
    names = sorted(p.name for p in files)
    assert names == [
        "confusion.png",
        "confusion_matrix.csv",
        "error_histogram.png",
        "error_vs_true_z.png",
        "per_image_errors.csv",
    ]
    for p in files:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (tmp_path / "plots" / "per_image_errors.csv").read_text().splitlines()
    assert len(rows) == 1 + 22 and rows[0].startswith("stack,slice") and "s_z_pred_um" in rows[0]
    fig = training_curves(
        [
            {"step": 1, "loss": 2.0},
            {"step": 2, "loss": 1.5, "val_median_abs_error_um": 3.0, "val_within_1um": 0.2},
        ],
        path=tmp_path / "curves.png",
    )
    assert (tmp_path / "curves.png").stat().st_size > 1000 and len(fig.axes) == 3


def test_distance_gain_is_the_slope_near_focus_and_says_when_it_is_a_change() -> None:
    from napari_zfocus.inspection.evaluation_result import distance_gain

    z = np.tile(np.arange(-15.0, 16.0), 3)
    stacks = np.repeat(["a.tif", "b.tif", "c.tif"], 31)
    shifted = z + np.repeat([0.3, -0.4, 0.1], 31)  # wherever focus was marked
    read = np.clip(0.74 * shifted, -20, 20)
    gain = distance_gain({"stack": stacks, "z_true_um": shifted, "z_pred_um": read})
    assert gain["gain"] == pytest.approx(0.74, abs=1e-6) and gain["change"] is True
    assert gain["stacks"] == 3 and 0.05 <= gain["threshold"] < 0.26
    same = distance_gain({"stack": stacks, "z_true_um": z, "z_pred_um": 1.02 * z})
    assert same["change"] is False
    few = np.array([0.0, 1.0, 2.0])
    assert distance_gain({"stack": np.array(["a"] * 3), "z_true_um": few,
                          "z_pred_um": few}) is None


def test_the_docks_evaluation_refuses_a_stack_the_eval_command_refuses(tmp_path: Path) -> None:
    """A stack whose z-step leaves one slice inside the model's range only tests z = 0:
    the dock's job refuses it with the command's rule and message, before reading images."""
    import threading

    from _tiny import write_noise_dataset
    from napari_zfocus.data import Annotation, write_annotations
    from napari_zfocus.errors import DatasetError
    from napari_zfocus.inspection.jobs import evaluate_job

    folder = write_noise_dataset(tmp_path / "ds", 2, (7, 60, 60), focus_index=3)
    predictor = FakePredictor(0.0)
    # 1 um steps: 7 slices inside -5..5 um; the job runs to the end.
    gen = evaluate_job(predictor, str(folder), False, threading.Event())
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    assert stop.value.value.metrics["n_images"] == 14
    # 100 um steps on the second stack: one slice in range.
    write_annotations(folder, [Annotation("s0.tif", 3, 1.0, 0.24),
                               Annotation("s1.tif", 3, 100.0, 0.24)])
    predictor.calls = 0
    with pytest.raises(DatasetError, match=r"s1\.tif: only 1 of its 7 slices") as err:
        next(evaluate_job(predictor, str(folder), False, threading.Event()))
    assert "annotations.csv" in str(err.value) and predictor.calls == 0
