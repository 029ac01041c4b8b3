"""The broad preset: per-stack ranges, features on a share of stacks, source sampling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.simulation import PRESETS, Optics, OpticsParams, SimulationParams, simulate_stack

TINY = dict(shape=(32, 32), n_slices=3)


@pytest.fixture(scope="module")
def broad_stacks():
    # Growth and placing hundreds of cells in the margin are the slow part of a tiny
    # stack: up to 3 h and 40 cells here (the preset's own ranges: the test below).
    params = SimulationParams.broad(**TINY, grow_hours=(0.0, 3.0), n_cells=(5.0, 40.0))
    return params, [simulate_stack(params, seed=s) for s in range(10)]


def test_presets_build_fresh_default_and_broad_settings():
    assert PRESETS["default"]() == SimulationParams()
    assert PRESETS["broad"]() == SimulationParams.broad()
    assert PRESETS["broad"]() is not PRESETS["broad"]()
    SimulationParams.broad().validate()
    assert SimulationParams.broad(shape=(64, 64)).shape == (64, 64)
    broad = SimulationParams.broad()
    assert (broad.grow_hours, broad.n_cells, broad.condenser_na) == ((0, 24), (5, 400), (0.2, 0.6))
    assert broad.feature_probability == {"rods": 0.4, "growth": 0.4, "debris": 0.6,
                                         "pillars": 0.6}


def test_broad_knobs_are_drawn_within_their_ranges(broad_stacks):
    params, stacks = broad_stacks
    for sim in stacks:
        d = sim.drawn
        assert 5 <= d["n_cells"] <= 40 and 0.0 <= d["ceiling_fraction"] <= 0.5
        assert 0.2 <= d["condenser_na"] <= 0.6 < params.optics.na
        assert 200 <= d["photons"] <= 20000 and 1 <= d["read_noise_e"] <= 12
        assert 0 <= d["vignetting"] <= 0.5 and max(abs(d["tilt_x"]), abs(d["tilt_y"])) <= 0.01
        assert 2.5 <= d["cell_diameter_um"] <= 8 and 0.015 <= d["cell_dn"] <= 0.08
        assert 0.002 <= d["cell_absorption_per_um"] <= 0.05
        assert 0 <= d["rod_fraction"] <= 0.5 and 0 <= d["debris_per_100um2"] <= 1
        assert 0 <= d["grow_hours"] <= 3 and 4 <= d["chamber_height_um"] <= 12
        c = sim.scene.cells
        assert np.all((c.dn >= 0.015 - 1e-12) & (c.dn <= 0.08 + 1e-12))
        assert np.all((c.mu >= 0.002 - 1e-12) & (c.mu <= 0.05 + 1e-12))
        # The chamber holds its cells: nothing pokes through the floor or the ceiling.
        height = d["chamber_height_um"]
        assert np.all(c.z - c.c >= -1e-9) and np.all(c.z + c.c <= height + 1e-9)
        assert sim.scene.params.chamber_height_um == height


def test_features_are_on_for_a_share_of_stacks(broad_stacks):
    _, stacks = broad_stacks
    for key in ("rod_fraction", "debris_per_100um2", "grow_hours"):
        values = [sim.drawn[key] for sim in stacks]
        assert 0 < sum(v > 0 for v in values) < len(values), key
    pillars = [sim.drawn["pillars"] for sim in stacks]
    assert any(pillars) and not all(pillars)
    assert any(sim.scene.cells.rod.any() for sim in stacks)
    assert any(len(sim.scene.debris) for sim in stacks)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_feature_probability_switches_a_feature_off_or_on(p):
    params = dataclasses.replace(SimulationParams(**TINY), n_cells=20.0, rod_fraction=0.5,
                                 feature_probability={"rods": p, "pillars": p})
    for seed in range(3):
        sim = simulate_stack(params, seed=seed)
        assert sim.drawn["rod_fraction"] == 0.5 * p and sim.drawn["pillars"] == bool(p)
        assert sim.scene.cells.rod.any() == bool(p)
        assert sim.scene.params.pillar_pitch_um == (50.0 if p else 0.0)


def test_chamber_is_raised_to_its_tallest_cells():
    params = SimulationParams(**TINY, n_cells=10.0, chamber_height_um=4.0,
                              cell_diameter_um=7.0)
    sim = simulate_stack(params, seed=0)
    assert sim.drawn["chamber_height_um"] == pytest.approx(7.0)
    assert np.all(sim.scene.cells.z + sim.scene.cells.c <= 7.0 + 1e-9)


def test_wide_condensers_get_more_source_points():
    def points(**kw: float) -> int:
        return Optics(OpticsParams(**kw), (96, 96), 0.24).n_sources

    assert points(condenser_na=0.6, source_density=130.0) >= 40
    assert points(condenser_na=0.6) <= 16
    assert points(condenser_na=0.35, source_density=130.0) == points(condenser_na=0.35)


@pytest.mark.parametrize(
    "change",
    [dict(condenser_na=(0.2, 1.4)), dict(rod_fraction=(0.0, 1.5)),
     dict(chamber_height_um=(-1.0, 5.0)), dict(cell_dn=(0.05, 0.01)),
     dict(feature_probability={"wings": 0.5}), dict(feature_probability={"rods": 2.0})],
)
def test_bad_broad_settings_raise(change):
    with pytest.raises(ZFocusError, match="simulation: "):
        SimulationParams.broad(**change).validate()
