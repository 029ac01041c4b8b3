"""benchmarks/aperture_bound.py: the single-image bound when the condenser aperture varies."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from _scripts import benchmark_script


@pytest.fixture(scope="module")
def script():
    with benchmark_script("aperture_bound") as module:
        yield module


def test_one_aperture_is_readable_and_a_spread_is_not(script) -> None:
    fixed = script.bound(20_000, 0, (0.4, 0.4), (0.02, 0.06), contrast=False)
    spread = script.bound(20_000, 0, (0.25, 0.55), (0.02, 0.06), contrast=False)
    both = script.bound(20_000, 0, (0.25, 0.55), (0.02, 0.06), contrast=True)
    known_index = script.bound(20_000, 0, (0.25, 0.55), (0.04, 0.04), contrast=True)
    assert fixed["within_1um"] == 1.0  # the blur scale is z itself, up to a constant
    assert 0.6 < spread["within_1um"] < 0.8
    # Contrast helps as far as the cells' index is known, fully when it is one value.
    assert spread["within_1um"] < both["within_1um"] < known_index["within_1um"] == 1.0
    # Reporting the posterior's mean (the expected-value readout) costs where it is wide,
    # nothing where it is not.
    assert fixed["within_1um_expected_value"] == 1.0
    assert spread["within_1um_expected_value"] < spread["within_1um"] - 0.1
    assert both["within_1um_expected_value"] < both["within_1um"] - 0.1


def test_the_zeros_show_near_focus_and_at_narrow_apertures(script) -> None:
    z = np.array([1.0, 1.0, 4.0, 4.0])
    na = np.array([0.4, 0.55, 0.25, 0.4])
    # limits 0.61^2 * 1.33 * 0.55 / NA^2: 1.70, 0.90, 4.35, 1.70 um
    assert script.zeros_visible(z, na).tolist() == [True, False, True, False]


def test_the_best_guess_covers_the_most_likely_slices(script) -> None:
    z = np.array([3.0, 4.0, 5.0, 9.0, 3.0])
    keys = np.array([0, 0, 0, 0, 1])
    guess = script.best_guesses(z, keys, np.arange(0.0, 10.0, 0.5))
    assert guess[:4].tolist() == [4.0] * 4 and guess[4] in (2.0, 2.5, 3.0, 3.5, 4.0)


def test_the_posterior_mean_is_taken_per_observation(script) -> None:
    z = np.array([3.0, 4.0, 8.0, -2.0, 9.0])
    keys = np.array([5, 5, 5, 0, 7])
    assert script.posterior_means(z, keys).tolist() == [5.0, 5.0, 5.0, -2.0, 9.0]


def test_the_bound_draws_the_waveorder_world_as_it_draws_itself(script) -> None:
    """The bound keeps its own copy of the world's ranges (so it runs without waveorder);
    they must stay the world's."""
    benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    if str(benchmarks) not in sys.path:
        sys.path.insert(0, str(benchmarks))
    from worlds import waveorder_world as ww

    about = ww.world_description(1, 0, 64)
    assert tuple(script.CONDENSER_NA) == tuple(ww.CONDENSER_NA)
    assert tuple(script.FOCUS_RANGE) == tuple(ww.FOCUS_RANGE)
    assert (script.N_SLICES, script.WAVELENGTH_UM, script.N_MEDIA) == (
        ww.N_SLICES, ww.WAVELENGTH_UM, ww.N_MEDIA)
    assert list(script.INDEX_EXCESS) == about["ranges"]["index_excess"]
