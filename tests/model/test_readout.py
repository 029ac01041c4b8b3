"""Softmax readout: sub-bin expected value, confidence, entropy, bimodality."""

from __future__ import annotations

import numpy as np
import pytest

from napari_zfocus.model.readout import BimodalRule, readout, softmax

CENTRES = np.arange(-20.0, 21.0)  # 41 bins of 1 um, as the paper


def gaussian(mu: float, sigma: float, centres: np.ndarray = CENTRES) -> np.ndarray:
    p = np.exp(-0.5 * ((centres - mu) / sigma) ** 2)
    return p / p.sum()


@pytest.mark.parametrize("mu", [-7.5, -0.3, 0.0, 0.3, 4.45, 12.2])
def test_expected_value_is_sub_bin_accurate(mu: float) -> None:
    r = readout(gaussian(mu, 1.0), CENTRES)
    assert r.z_um == pytest.approx(mu, abs=0.03)
    assert r.z_argmax_um == np.round(mu)  # the paper's readout is off by up to half a bin
    assert not r.bimodal


def test_second_mode_does_not_drag_the_estimate() -> None:
    p = 0.6 * gaussian(-8.0, 0.8) + 0.4 * gaussian(4.0, 0.8)
    r = readout(p, CENTRES)
    # a plain expected value would land near -3.2 um, between the floor and the ceiling
    assert float(np.sum(p * CENTRES)) == pytest.approx(-3.2, abs=0.05)
    assert r.z_um == pytest.approx(-8.0, abs=0.05)
    assert r.bimodal
    assert r.second_mode_um == 4.0


@pytest.mark.parametrize(
    "p",
    [
        gaussian(2.0, 4.0),  # broad and ambiguous, but one mode
        0.95 * gaussian(0.0, 0.7) + 0.05 * gaussian(9.0, 0.7),  # tiny second bump
        0.6 * gaussian(0.0, 1.0) + 0.4 * gaussian(2.0, 1.0),  # two peaks too close: a shoulder
    ],
)
def test_not_bimodal(p: np.ndarray) -> None:
    assert not readout(p, CENTRES).bimodal


def test_bimodal_rule_thresholds_are_used() -> None:
    p = 0.8 * gaussian(-5.0, 0.7) + 0.2 * gaussian(5.0, 0.7)
    assert readout(p, CENTRES).bimodal
    assert not readout(p, CENTRES, rule=BimodalRule(min_mass=0.3)).bimodal


def test_confidence_and_entropy_limits() -> None:
    delta = np.zeros(41)
    delta[20] = 1.0
    uniform = np.full(41, 1 / 41)
    r = readout(np.stack([delta, uniform]), CENTRES)
    # uniform: argmax is the first bin, which has one neighbour -> 2 bins of mass
    assert r.confidence.tolist() == pytest.approx([1.0, 2 / 41])
    assert r.entropy.tolist() == pytest.approx([0.0, np.log(41)])
    assert r.z_um.shape == (2,)
    # a sharper softmax is more confident than a broader one around the same mode
    sharp, broad = readout(np.stack([gaussian(0, 0.5), gaussian(0, 3)]), CENTRES).confidence
    assert sharp > broad


def test_edge_mode_and_softmax() -> None:
    r = readout(gaussian(20.0, 0.7), CENTRES)
    assert 19.0 < r.z_um <= 20.0  # pulled inside, never outside the range
    logits = np.array([[1.0, 2.0, 1000.0], [0.0, 0.0, 0.0]])
    s = softmax(logits)
    assert np.all(np.isfinite(s)) and np.allclose(s.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="bins"):
        readout(np.ones(5) / 5, CENTRES)


def test_non_finite_softmax_reads_as_nan_not_as_uniform() -> None:
    """NaN logits (a broken model) used to read as a uniform softmax: z -3.5, confidence 0.18."""
    good = gaussian(1.0, 0.6)
    bad = np.full_like(good, np.nan)
    inf = good.copy()
    inf[3] = np.inf
    r = readout(np.stack([good, bad, inf]), CENTRES)
    assert np.isfinite(r.z_um[0]) and abs(float(r.z_um[0]) - 1.0) < 0.1
    for i in (1, 2):
        assert np.isnan(r.z_um[i]) and np.isnan(r.confidence[i]) and np.isnan(r.entropy[i])
        assert not r.bimodal[i]
    assert np.isnan(readout(softmax(np.full(len(CENTRES), np.inf)), CENTRES).z_um)
