"""Calibrated confidence: ECE, window mass, temperature and event-map fits, stored form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.calibration import (
    Calibration,
    expected_calibration_error,
    fit_calibration,
    fit_temperature,
    within_tolerance,
)
from napari_zfocus.model.readout import readout, softmax, window_mass

CENTRES = np.arange(-10.0, 11.0)  # 21 one-um bins


def test_ece_of_hand_computable_inputs() -> None:
    # bin 9: confidences 0.95, 0.95, half right -> |0.95 - 0.5| * 2/4
    # bin 1: confidences 0.15, 0.15, none right -> |0.15 - 0| * 2/4
    conf = [0.95, 0.95, 0.15, 0.15]
    assert expected_calibration_error(conf, [1, 0, 0, 0]) == pytest.approx(0.225 + 0.075)
    # 1.0 falls in the last bin; a perfectly calibrated set has ECE 0
    assert expected_calibration_error([1.0, 1.0, 0.5, 0.5], [1, 1, 1, 0]) == pytest.approx(0)
    # NaN confidences are left out; none left: NaN
    assert expected_calibration_error([0.8, math.nan], [1, 0]) == pytest.approx(0.2)
    assert math.isnan(expected_calibration_error([], []))
    with pytest.raises(ValueError, match="2 confidences but 1"):
        expected_calibration_error([0.1, 0.2], [1])


def test_within_tolerance_counts_exactly_one_um_as_within() -> None:
    assert within_tolerance([1.0, -1.0, 1.01, 0.0], [0.0, 0.0, 0.0, 1.0]).tolist() == [
        True, True, False, True]


def test_window_mass_spreads_each_bin_over_its_width() -> None:
    one_hot = (CENTRES == 0.0).astype(float)  # all mass in the bin -0.5..0.5 um
    assert window_mass(one_hot, CENTRES, 0.5) == pytest.approx(1.0)
    assert window_mass(one_hot, CENTRES, 1.2) == pytest.approx(0.3)  # overlap 0.2..0.5
    assert window_mass(one_hot, CENTRES, 1.6) == pytest.approx(0.0)
    uniform = np.full((2, len(CENTRES)), 1 / len(CENTRES))
    assert window_mass(uniform, CENTRES, [0.0, 3.3]) == pytest.approx([2 / 21, 2 / 21])
    assert math.isnan(float(window_mass(one_hot, CENTRES, math.nan)))


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A model that knows which images are hard, but says each is 4x easier than it is:
    errors N(0, s) with s 0.3..2.5 um per image, softmax s / 4 wide."""
    rng = np.random.default_rng(seed)
    z_true = rng.integers(-8, 9, n).astype(float)
    spread = rng.uniform(0.3, 2.5, n)
    z_est = z_true + rng.normal(0.0, 1.0, n) * spread
    logits = -0.5 * ((CENTRES[None, :] - z_est[:, None]) / (spread[:, None] / 4)) ** 2
    return softmax(logits), z_true


def _nll(probs: np.ndarray, z_true: np.ndarray) -> float:
    return float(-np.mean(np.log(probs[np.arange(len(z_true)), (z_true + 10).astype(int)])))


def test_temperature_fit_lowers_nll_and_ece_of_an_overconfident_model() -> None:
    probs, z_true = _overconfident(600, 0)
    t = fit_temperature(probs, z_true, CENTRES)
    assert t > 2.0  # an overconfident softmax is widened
    tempered = Calibration(temperature=t).tempered(probs)
    assert _nll(tempered, z_true) < _nll(probs, z_true) - 1.0
    z = readout(probs, CENTRES).z_um
    hit = within_tolerance(z, z_true)
    ece_raw = expected_calibration_error(window_mass(probs, CENTRES, z), hit)
    ece_t = expected_calibration_error(window_mass(tempered, CENTRES, z), hit)
    assert ece_t < ece_raw / 2


def test_fitted_calibration_holds_on_new_images_of_the_same_model() -> None:
    probs, z_true = _overconfident(800, 1)
    cal = fit_calibration(probs, z_true, CENTRES, fitted={"source": "synthetic"})
    assert cal.fitted["source"] == "synthetic" and cal.fitted["images"] == 800
    assert cal.fitted["ece_in_sample"] < cal.fitted["ece_uncalibrated"]
    new, z_new = _overconfident(800, 2)
    z = readout(new, CENTRES).z_um
    conf = cal.confidence(new, z, CENTRES)
    assert expected_calibration_error(conf, within_tolerance(z, z_new)) < 0.05
    # The estimate is read from the network's softmax: calibration never moves it.
    assert np.array_equal(readout(cal.tempered(new), CENTRES).z_argmax_um,
                          readout(new, CENTRES).z_argmax_um)


def test_calibration_needs_enough_finite_images() -> None:
    probs, z_true = _overconfident(20, 3)
    with pytest.raises(ZFocusError, match="at least 50 images"):
        fit_calibration(probs, z_true, CENTRES)
    probs, z_true = _overconfident(60, 3)
    probs[0] = np.nan
    with pytest.raises(ZFocusError, match="not finite"):
        fit_calibration(probs, z_true, CENTRES)


def test_stored_form_round_trips_and_refuses_bad_numbers() -> None:
    cal = Calibration(0.2, 1.8, -1.3, fitted={"images": 10})
    back = Calibration.from_dict(cal.to_dict(), n_bins=len(CENTRES))
    assert (back.temperature, back.slope, back.intercept, back.fitted) == (
        0.2, 1.8, -1.3, {"images": 10})
    bad = {"temperature": math.nan, "slope": -1.0, "intercept": math.inf}
    for key, value in bad.items():
        with pytest.raises(ZFocusError, match=f"^calibration {key} must be"):
            Calibration.from_dict(dict(cal.to_dict(), **{key: value}), n_bins=21)
    with pytest.raises(ZFocusError, match="calibration temperature must be"):
        Calibration.from_dict(dict(cal.to_dict(), temperature="0.2"), n_bins=21)
    with pytest.raises(ZFocusError, match="newer"):
        Calibration.from_dict(dict(cal.to_dict(), version=2), n_bins=21)
    with pytest.raises(ZFocusError, match="JSON object"):
        Calibration.from_dict([0.2], n_bins=21)
