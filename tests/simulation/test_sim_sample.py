"""Scenes: cells, pillars, growth for live simulations, optical layers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.simulation import SampleParams, Scene, optical_layers


def test_cells_avoid_pillars():
    rng = np.random.default_rng(0)
    scene = Scene.random(SampleParams(n_cells=150), rng, (256, 256), 0.24)
    assert len(scene.pillars) >= 1  # 61 um field, 50 um pitch
    c = scene.cells
    d = np.hypot(c.x[:, None] - scene.pillars[None, :, 0], c.y[:, None] - scene.pillars[None, :, 1])
    assert np.all(d >= 5.0 + c.radius[:, None] - 1e-6)
    assert 100 <= scene.n_in_field() <= 150


def test_population_grows_from_few_to_hundreds_in_a_day():
    rng = np.random.default_rng(1)
    scene = Scene.random(SampleParams(n_cells=15), rng, (256, 256), 0.24)
    start = scene.n_in_field()
    version = scene.version
    for _ in range(24):
        scene.grow(1.0, rng)
    assert 10 <= start <= 20
    assert scene.n_in_field() >= 150
    assert scene.version > version
    # Budded cells exist and every cell stays in the chamber.
    assert (scene.cells.bud > 0).any()
    assert np.all(scene.cells.z - scene.cells.c > -0.01)
    assert np.all(scene.cells.z + scene.cells.c < 6.0 + 0.01)


def test_copy_is_independent():
    rng = np.random.default_rng(2)
    scene = Scene.random(SampleParams(n_cells=20), rng, (64, 64), 0.24)
    twin = scene.copy()
    scene.grow(2.0, rng)
    assert not np.array_equal(scene.cells.x[: len(twin.cells)], twin.cells.x)


def test_optical_layers_hold_each_cells_optical_path():
    rng = np.random.default_rng(3)
    params = SampleParams(n_cells=1, bud_probability=0.0, vacuole_probability=0.0,
                          pillar_pitch_um=0.0, max_tilt=0.0)
    scene = Scene.random(params, rng, (64, 64), 0.24, margin_um=0.0)
    scene.cells = scene.cells.take(np.array([0]))
    scene.cells.x[:] = scene.cells.y[:] = 7.68  # field centre
    opd, absorb, edges = optical_layers(scene, (64, 64), (0, 0), layer_um=1.0)
    assert opd.shape == (len(edges) - 1, 64, 64) and edges[0] > edges[-1]  # top slab first
    c = scene.cells
    # Summed over slabs, the OPD at the centre is dn x full cell thickness (2c).
    assert opd.sum(0)[32, 32] == pytest.approx(c.dn[0] * 2 * c.c[0], rel=0.02)
    assert opd.sum(0)[0, 0] == 0.0
    # Volume integral of the OPD = dn x ellipsoid volume.
    volume = 4 / 3 * np.pi * c.a[0] * c.b[0] * c.c[0]
    assert opd.sum() * 0.24**2 == pytest.approx(c.dn[0] * volume, rel=0.05)
    assert absorb.sum() > 0


def test_bad_sample_settings_raise():
    with pytest.raises(ZFocusError):
        Scene.random(SampleParams(ceiling_fraction=2.0), np.random.default_rng(), (64, 64), 0.24)
    with pytest.raises(ZFocusError):
        Scene.random(SampleParams(chamber_height_um=2.0), np.random.default_rng(), (64, 64), 0.24)
