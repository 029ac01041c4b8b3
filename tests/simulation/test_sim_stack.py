"""simulate_stack: determinism, shapes, ground truth and knobs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.simulation import SimulationParams, simulate_stack


def test_same_seed_same_stack_different_seed_different(small_params):
    a = simulate_stack(small_params, seed=3)
    b = simulate_stack(small_params, seed=3)
    c = simulate_stack(small_params, seed=4)
    np.testing.assert_array_equal(a.data, b.data)
    assert a.focus_index == b.focus_index and a.drawn == b.drawn
    assert not np.array_equal(a.data, c.data)


def test_shape_dtype_and_defocus_axis(small_params):
    sim = simulate_stack(small_params, seed=1)
    assert sim.data.shape == (31, 64, 64)
    assert sim.data.dtype == np.uint16
    np.testing.assert_allclose(sim.z_um, (np.arange(31) - sim.focus_index) * 1.0)
    assert sim.z_um[sim.focus_index] == 0.0
    # Camera offset + background well inside the 16-bit range, not clipped.
    assert sim.data.min() > 100 and sim.data.max() < 65535


def test_focus_index_varies_around_the_middle(small_params):
    assert small_params.focus_range() == (10, 20)
    few = dataclasses.replace(small_params, n_slices=7, shape=(16, 16), n_cells=1.0)
    seen = {simulate_stack(few, seed=s).focus_index for s in range(12)}
    assert seen <= {2, 3, 4} and len(seen) >= 2


def test_fixed_focus_index_and_z_step(small_params):
    p = dataclasses.replace(small_params, focus_index=4, z_step_um=0.5, n_slices=9)
    sim = simulate_stack(p, seed=0)
    assert sim.focus_index == 4
    np.testing.assert_allclose(sim.z_um, (np.arange(9) - 4) * 0.5)


def test_in_focus_slice_has_the_least_contrast(small_params):
    p = dataclasses.replace(small_params, n_cells=15.0, vignetting=0.0, photons=20000.0,
                            ceiling_fraction=0.0, max_tilt=0.0)
    p.sample = dataclasses.replace(p.sample, pillar_pitch_um=0.0)
    sim = simulate_stack(p, seed=5)
    img = sim.data.astype(np.float32) - 100.0  # remove the camera offset
    contrast = (img / img.mean(axis=(1, 2), keepdims=True)).std(axis=(1, 2))
    assert abs(int(np.argmin(contrast)) - sim.focus_index) <= 1


def test_knobs_are_drawn_within_their_ranges(small_params):
    for seed in range(4):
        d = simulate_stack(small_params, seed=seed).drawn
        assert 5 <= d["n_cells"] <= 15
        assert 0.0 <= d["ceiling_fraction"] <= 0.3
        assert 0.3 <= d["condenser_na"] <= 0.45
        assert abs(d["tilt_x"]) <= small_params.max_tilt


def test_ceiling_fraction_knob_moves_cells_to_the_ceiling(small_params):
    none = dataclasses.replace(small_params, ceiling_fraction=0.0, n_cells=15.0)
    all_ = dataclasses.replace(small_params, ceiling_fraction=1.0, n_cells=15.0)
    s0 = simulate_stack(none, seed=2).scene
    s1 = simulate_stack(all_, seed=2).scene
    assert not s0.cells.ceiling.any() and s1.cells.ceiling.all()
    assert s1.cells.z.mean() > s0.cells.z.mean() + 1.0


def test_grow_hours_turns_seeded_cells_into_a_colony(small_params):
    # A 38 um field (the small default field is narrower than a few hours of flow).
    seeded = dataclasses.replace(small_params, n_cells=10.0, shape=(160, 160), n_slices=3)
    grown = dataclasses.replace(seeded, grow_hours=(4.0, 5.0))
    a = simulate_stack(seeded, seed=5)
    b = simulate_stack(grown, seed=5)
    again = simulate_stack(grown, seed=5)
    assert "grow_hours" not in a.drawn  # no growth asked for: nothing extra drawn
    assert 4.0 <= b.drawn["grow_hours"] <= 5.0
    # About two doublings of uncrowded cells: more cells, some of them budding.
    assert b.scene.n_in_field() > 1.5 * a.scene.n_in_field()
    assert (b.scene.cells.bud > 0).any()
    np.testing.assert_array_equal(b.data, again.data)  # still deterministic
    # The knobs drawn before growth are the same: growth is drawn last.
    assert all(b.drawn[k] == a.drawn[k] for k in ("condenser_na", "photons", "ceiling_fraction"))


def test_grow_step_is_the_live_simulators_scene_update_interval():
    # Grown training stacks should have grown in the steps the live colony grows in.
    from napari_zfocus.live.simulated_microscope import SimulatedMicroscopeSettings
    from napari_zfocus.simulation.simulated_stack import GROW_STEP_H

    assert pytest.approx(SimulatedMicroscopeSettings().rerender_every_s) == GROW_STEP_H * 3600.0


@pytest.mark.parametrize(
    "change",
    [
        dict(n_slices=0),
        dict(shape=(8, 8)),
        dict(focus_index=31),
        dict(ceiling_fraction=(0.2, 1.5)),
        dict(condenser_na=1.4),
        dict(n_cells=(30.0, 10.0)),
        dict(pixel_size_um=0.0),
        dict(grow_hours=-1.0),
    ],
)
def test_bad_parameters_raise_zfocus_error(change):
    with pytest.raises(ZFocusError):
        simulate_stack(SimulationParams(**change))
