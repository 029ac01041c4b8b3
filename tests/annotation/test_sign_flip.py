"""The sign-flip suggestion: phase contrast is odd in defocus, bright one way, dark the other."""

from __future__ import annotations

import numpy as np
import pytest

from napari_zfocus.annotation import suggest_focus
from napari_zfocus.annotation.sign_flip import mirror_curve, sign_flip_focus, tile_correlations


def _phase_stack(focus: int, n: int = 25, side: int = 96, seed: int = 0) -> np.ndarray:
    """A texture whose contrast is odd about ``focus`` (a weak lens), with camera noise."""
    rng = np.random.default_rng(seed)
    texture = rng.standard_normal((side, side))
    z = np.arange(n) - focus
    amplitude = np.tanh(z / 2.0)  # dark below, bright above, vanishes in focus
    noise = rng.standard_normal((n, side, side))
    return (1000.0 + 80.0 * amplitude[:, None, None] * texture + 4.0 * noise).astype(np.float32)


@pytest.mark.parametrize("focus", [6, 12, 17])
def test_the_sign_flip_is_found(focus: int) -> None:
    result = suggest_focus(_phase_stack(focus), classic_scores=False)
    assert result.method == "sign-flip"
    assert abs(result.focus_index - focus) <= 1
    assert result.confidence > 0.5
    assert "mirror" in result.profiles


def test_bright_structures_without_a_flip_get_no_say() -> None:
    """A quarter of the field holds a strong even (pillar-like) pattern focused elsewhere."""
    stack = _phase_stack(15, side=96)
    rng = np.random.default_rng(5)
    pillar = rng.standard_normal((48, 48))
    z = np.arange(len(stack))
    even = 1.0 + np.exp(-((z - 7) ** 2) / 4.0)  # peaks at slice 7, same sign everywhere
    stack[:, :48, :48] += (600.0 * even[:, None, None] * pillar).astype(np.float32)
    result = suggest_focus(stack, classic_scores=False)
    assert result.method == "sign-flip"
    assert abs(result.focus_index - 15) <= 1


def test_two_layers_name_a_runner_up() -> None:
    """Cells on the ceiling: a second, weaker flip 6 slices away is the runner-up."""
    floor, ceiling = _phase_stack(16, seed=1), _phase_stack(10, seed=2)
    stack = floor.copy()
    stack[:, :, 48:] = 0.5 * (ceiling[:, :, 48:] - 1000.0) + 1000.0
    result = suggest_focus(stack, classic_scores=False)
    assert result.focus_index in (15, 16, 17)
    assert result.runner_up is not None and abs(result.runner_up - 10) <= 1


def test_no_flip_falls_back_to_the_contrast_dip() -> None:
    rng = np.random.default_rng(3)
    texture = rng.standard_normal((48, 48))
    z = np.arange(15)
    amplitude = 0.3 + np.exp(-((z - 5) ** 2) / 2.0) + np.exp(-((z - 9) ** 2) / 2.0)
    stack = (2000 + amplitude[:, None, None] * 300 * texture).astype(np.float32)
    result = suggest_focus(stack, classic_scores=False)
    assert result.method == "contrast-dip"
    assert result.focus_index == 7
    assert result.runner_up is None


def test_contrast_dip_can_be_asked_for() -> None:
    result = suggest_focus(_phase_stack(12), classic_scores=False, method="contrast-dip")
    assert result.method in ("contrast-dip", "edge-minimum")
    with pytest.raises(ValueError, match="method"):
        suggest_focus(_phase_stack(12), method="sharpest")


def test_mirror_curve_needs_two_pairs() -> None:
    correlation = np.eye(7)
    curve = mirror_curve(correlation, reach=3)
    assert np.isnan(curve[0]) and np.isnan(curve[1]) and np.isnan(curve[-1])
    assert np.isfinite(curve[2:5]).all()
    # A single pair is allowed when the reach itself is one slice (coarse z-steps).
    assert np.isfinite(mirror_curve(correlation, reach=1)[1:-1]).all()


def test_blank_tiles_do_not_break_it() -> None:
    stack = _phase_stack(12, side=64)
    prepared = stack - stack.mean(axis=(1, 2), keepdims=True)
    prepared[:, :32, :32] = 0.0  # an empty corner: zero variance
    correlations = tile_correlations(prepared)
    assert np.isfinite(correlations).all()
    found = sign_flip_focus(prepared, z_step_um=1.0)
    assert found is not None and abs(found.focus_index - 12) <= 1
