"""Classic focus scores: sharper images score higher, stacks are scored slice by slice."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_zfocus.annotation import FOCUS_SCORES


@pytest.fixture(scope="module")
def sharp() -> np.ndarray:
    rng = np.random.default_rng(0)
    return 1000.0 + 200.0 * ndimage.gaussian_filter(rng.standard_normal((64, 64)), 1.0)


def test_registry_names() -> None:
    assert set(FOCUS_SCORES) == {
        "variance_of_laplacian",
        "brenner",
        "tenengrad",
        "normalized_variance",
    }


@pytest.mark.parametrize("name", sorted(FOCUS_SCORES))
def test_blur_lowers_every_score(name: str, sharp: np.ndarray) -> None:
    score = FOCUS_SCORES[name]
    values = [score(ndimage.gaussian_filter(sharp, s)) for s in (0.0, 1.0, 2.0, 4.0)]
    assert all(isinstance(v, float) for v in values)
    assert values == sorted(values, reverse=True), values
    assert values[-1] < 0.8 * values[0]


@pytest.mark.parametrize("name", sorted(FOCUS_SCORES))
def test_stack_is_scored_per_slice(name: str, sharp: np.ndarray) -> None:
    score = FOCUS_SCORES[name]
    stack = np.stack([ndimage.gaussian_filter(sharp, s) for s in np.linspace(0, 3, 11)])
    profile = score(stack.astype(np.uint16))  # integer input is fine
    assert profile.shape == (11,)
    expected = [score(image) for image in stack.astype(np.uint16)]
    np.testing.assert_allclose(profile, expected, rtol=1e-6)


def test_normalized_variance_ignores_brightness(sharp: np.ndarray) -> None:
    """Twice the light gives twice the variance per mean: the score scales, not the peak."""
    score = FOCUS_SCORES["normalized_variance"]
    assert score(2 * sharp) == pytest.approx(2 * score(sharp), rel=1e-6)
    assert score(np.zeros((8, 8))) == 0.0  # black frame: no division by zero


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 2, 2, 2)), np.zeros((2, 64))])
def test_bad_shapes(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        FOCUS_SCORES["brenner"](bad)
