"""Debris: where the particles are, how they render, and that they leave focus alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.simulation import (
    Debris,
    OpticalRenderer,
    OpticsParams,
    SampleParams,
    Scene,
    SimulationParams,
    optical_layers,
    simulate_stack,
)

OPTICS = OpticsParams(n_source_points=12, margin_um=4.0)


def _scene(seed: int = 0, **sample: float) -> Scene:
    params = SampleParams(pillar_pitch_um=0.0, max_tilt=0.0, **sample)
    return Scene.random(params, np.random.default_rng(seed), (64, 64), 0.24, margin_um=4.0)


def _one_particle(scene: Scene, r: float, dn: float, mu: float) -> Scene:
    """``scene`` emptied, with one particle resting on the floor at the field centre."""
    scene.cells = scene.cells.take(np.zeros(len(scene.cells), bool))
    scene.debris = Debris(x=np.array([7.68]), y=np.array([7.68]), z=np.array([r]),
                          r=np.array([r]), dn=np.array([dn]), mu=np.array([mu]))
    return scene


def test_debris_lie_on_the_floor_the_ceiling_and_in_between():
    d = _scene(n_cells=0, debris_per_100um2=20.0).debris
    assert len(d) > 50
    assert np.all((d.r >= 0.15 - 1e-9) & (d.r <= 1.0 + 1e-9))
    assert np.all((d.z - d.r >= -1e-9) & (d.z + d.r <= 6.0 + 1e-9))
    on_floor = np.isclose(d.z, d.r)
    on_ceiling = np.isclose(d.z, 6.0 - d.r)
    assert on_floor.mean() > 0.2 and on_ceiling.mean() > 0.05
    assert (~on_floor & ~on_ceiling).mean() > 0.2
    assert (d.mu > 0.1).any() and (d.dn > 0.1).any()  # absorbing specks and beads


def test_debris_change_neither_the_cells_nor_the_focus_plane():
    clean = _scene(seed=5, n_cells=20)
    dirty = _scene(seed=5, n_cells=20, debris_per_100um2=5.0)
    assert len(clean.debris) == 0 and len(dirty.debris) > 0
    for name in ("x", "y", "z", "a", "dn"):
        np.testing.assert_array_equal(getattr(clean.cells, name), getattr(dirty.cells, name))
    assert clean.focus_height_um == dirty.focus_height_um
    np.testing.assert_array_equal(clean.drift_um_per_h, dirty.drift_um_per_h)
    twin = dirty.copy()
    twin.debris.x[:] += 1.0
    assert not np.array_equal(twin.debris.x, dirty.debris.x)  # copies are independent


def test_a_particle_smaller_than_a_pixel_keeps_its_volume():
    scene = _one_particle(_scene(n_cells=0), r=0.1, dn=0.2, mu=1.0)
    scene.debris.x[:] += 0.05  # off the pixel grid
    opd, absorb, edges = optical_layers(scene, (64, 64), (0, 0), layer_um=1.0)
    volume = 4 / 3 * np.pi * 0.1**3
    assert opd.sum() * 0.24**2 == pytest.approx(0.2 * volume, rel=1e-4)
    assert absorb.sum() * 0.24**2 == pytest.approx(1.0 * volume, rel=1e-4)
    assert np.count_nonzero(opd) <= 4
    assert np.flatnonzero(opd.sum(axis=(1, 2))).tolist() == [len(edges) - 2]  # bottom slab


def test_an_absorbing_speck_is_darkest_in_focus_and_a_bead_rings_out_of_it():
    speck = _one_particle(_scene(n_cells=0), r=0.5, dn=0.05, mu=1.5)
    at_speck = speck.focus_height_um - 0.5  # defocus of the plane through its centre
    z = at_speck + np.array([-4.0, 0.0, 4.0])
    centre = OpticalRenderer(OPTICS).render(speck, z)[:, 32, 32]
    assert centre[1] < 0.2 and centre[1] < 0.5 * min(centre[0], centre[2])
    bead = _one_particle(_scene(n_cells=0), r=0.5, dn=0.2, mu=0.0)
    planes = OpticalRenderer(OPTICS).render(bead, at_speck + np.array([-2.0, 2.0]))
    spot = planes[:, 29:36, 29:36]
    assert spot.min() < 0.5 and spot.max() > 1.3
    np.testing.assert_allclose(planes[:, :4, :4], 1.0, atol=0.02)  # background far away


def test_debris_make_an_empty_stack_visible():
    base = SimulationParams(shape=(64, 64), n_slices=9, n_cells=0.0, vignetting=0.0,
                            photons=20000.0, optics=OpticsParams(n_source_points=8,
                                                                 margin_um=4.0))
    base.sample = dataclasses.replace(base.sample, pillar_pitch_um=0.0)
    empty = simulate_stack(base, seed=3)
    dirty = simulate_stack(dataclasses.replace(base, debris_per_100um2=3.0), seed=3)

    def contrast(data: np.ndarray) -> np.ndarray:
        img = data.astype(np.float32) - 100.0
        return (img / img.mean(axis=(1, 2), keepdims=True)).std(axis=(1, 2))

    assert np.all(contrast(dirty.data) > 3 * contrast(empty.data))
    assert dirty.focus_index == empty.focus_index and dirty.drawn["debris_per_100um2"] == 3.0


@pytest.mark.parametrize("bad", [dict(debris_per_100um2=-1.0), dict(debris_per_100um2=500.0),
                                 dict(debris_diameter_um=(0.0, 1.0)),
                                 dict(debris_diameter_um=(1.0, 7.0))])
def test_bad_debris_settings_raise(bad):
    with pytest.raises(ZFocusError, match="sample: "):
        SampleParams(**bad).validate()
