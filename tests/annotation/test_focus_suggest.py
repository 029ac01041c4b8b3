"""The in-focus suggestion: contrast minimum between the sharpness peaks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_zfocus.annotation import suggest_focus
from napari_zfocus.data import ZStack
from napari_zfocus.errors import StackError


def _stack_with_contrast(amplitudes: np.ndarray, seed: int = 0) -> np.ndarray:
    """Slices of one fine texture whose contrast follows ``amplitudes``."""
    rng = np.random.default_rng(seed)
    texture = rng.standard_normal((48, 48))
    noise = rng.standard_normal((len(amplitudes), 48, 48))
    return (1000.0 + amplitudes[:, None, None] * 100.0 * texture + 5.0 * noise).astype(np.float32)


def test_dip_between_peaks_wins_over_the_sharpest_slice() -> None:
    z = np.arange(21)
    # Peaks at 8 and 12 (1 um either side of focus ~ bright-field), dip at 10.
    amplitude = 0.3 + np.exp(-((z - 8) ** 2) / 2.0) + 1.2 * np.exp(-((z - 12) ** 2) / 2.0)
    amplitude[10] = 0.35
    result = suggest_focus(_stack_with_contrast(amplitude))
    assert result.focus_index == 10
    assert result.method == "contrast-dip"
    assert result.peaks == (8, 12)
    assert result.sharpest_index == 12
    assert 0.3 < result.confidence <= 1.0
    assert set(result.profiles) >= {"contrast", "brenner", "tenengrad"}
    assert result.profile.shape == (21,)


def test_a_weak_dip_has_low_confidence() -> None:
    z = np.arange(15)
    amplitude = 1.0 + 0.02 * np.cos(z)  # ripples, no real dip
    result = suggest_focus(_stack_with_contrast(amplitude))
    assert result.confidence < 0.1


def test_focus_beyond_the_stack_end_falls_back() -> None:
    amplitude = np.linspace(2.0, 0.5, 12)  # only the falling side of a peak
    result = suggest_focus(_stack_with_contrast(amplitude))
    assert result.method == "edge-minimum"
    assert result.confidence == 0.0
    assert result.focus_index == 11


def test_sampling_comes_from_the_stack_or_the_caller() -> None:
    z = np.arange(15)
    amplitude = 0.3 + np.exp(-((z - 5) ** 2) / 2.0) + np.exp(-((z - 9) ** 2) / 2.0)
    stack = _stack_with_contrast(amplitude)
    assert suggest_focus(ZStack(stack, 0.5, 0.1)).z_step_um == 0.5
    assert suggest_focus(ZStack(stack, 0.5, 0.1), z_step_um=2.0).z_step_um == 2.0
    assert suggest_focus(stack).z_step_um == 1.0  # unknown: 1 um assumed
    assert suggest_focus(stack).focus_index == 7


def test_bad_input() -> None:
    with pytest.raises(StackError, match="at least 3 slices"):
        suggest_focus(np.ones((2, 8, 8)))
    bad = np.ones((5, 8, 8), np.float32)
    bad[1, 2, 2] = np.nan
    with pytest.raises(StackError, match="NaN"):
        suggest_focus(bad)
    with pytest.raises(StackError, match="expected a \\(Z, Y, X\\)"):
        suggest_focus(np.ones((8, 8)))


@pytest.fixture(scope="module")
def simulated():
    simulation = pytest.importorskip(
        "napari_zfocus.simulation.simulated_stack",
        reason="simulator (napari_zfocus.simulation.simulated_stack) not importable yet",
    )
    params = simulation.SimulationParams(shape=(192, 192), n_slices=21)
    return [simulation.simulate_stack(params, seed=seed) for seed in (101, 102, 103)]


def test_simulated_stacks_within_one_slice(simulated) -> None:
    """Ground truth from the simulator: the dip is within 1 slice of the true focus."""
    errors = []
    for sim in simulated:
        result = suggest_focus(ZStack(sim.data, 1.0, 0.24))
        errors.append(result.focus_index - sim.focus_index)
        # The sharpest slice is NOT the focus in bright-field: the dip is closer.
        assert abs(result.focus_index - sim.focus_index) <= abs(
            result.sharpest_index - sim.focus_index
        )
    assert max(abs(e) for e in errors) <= 1, errors
