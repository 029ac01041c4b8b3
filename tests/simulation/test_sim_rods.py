"""Rod-shaped cells: geometry, through-focus signature and growth by fission."""

from __future__ import annotations

import numpy as np
import pytest
from sim_helpers import make_rod_scene, rod_mask

from napari_zfocus.errors import ZFocusError
from napari_zfocus.simulation import (
    OpticalRenderer,
    OpticsParams,
    SampleParams,
    Scene,
    optical_layers,
)

Z = np.arange(-8.0, 8.01, 0.5)


@pytest.fixture(scope="module")
def rod_planes():
    scene = make_rod_scene(seed=0)
    return scene, OpticalRenderer(OpticsParams(n_source_points=12, margin_um=4.0)).render(scene, Z)


def test_rods_lie_flat_on_the_floor_within_their_ranges():
    c = make_rod_scene(seed=1).cells
    assert len(c) >= 5 and c.rod.all()
    assert np.all((2 * c.b >= 2.0) & (2 * c.b <= 4.0)) and np.all(c.b == c.c)
    assert np.all((2 * c.a >= 1.2 * 2 * c.b - 1e-9) & (2 * c.a <= 8.0))
    # Resting on the floor: the centre is one radius up (plus a gap under 0.3 um).
    assert np.all((c.z - c.c >= 0.0) & (c.z - c.c < 0.3 + 1e-9))
    assert np.all(c.bud == 0) and np.all(c.vac == 0)


def test_a_rod_holds_its_capsule_volume_and_full_width_thickness():
    scene = make_rod_scene(seed=2, n_cells=1, shape=(64, 64))
    scene.cells = scene.cells.take(np.array([0]))
    c = scene.cells
    c.x[:], c.y[:], c.angle[:] = 7.68, 7.68, 0.3
    opd, absorb, _ = optical_layers(scene, (64, 64), (0, 0), layer_um=1.0)
    total = opd.sum(0)
    a, r = c.a[0], c.b[0]
    # Through the axis the rod is as thick as it is wide; beyond its caps, nothing.
    assert total[32, 32] == pytest.approx(c.dn[0] * 2 * r, rel=0.02)
    ends = 7.68 + (a + 0.5) * np.array([np.cos(0.3), np.sin(0.3)])
    assert total[int(ends[1] / 0.24), int(ends[0] / 0.24)] == 0.0
    volume = np.pi * r**2 * (2 * (a - r)) + 4 / 3 * np.pi * r**3
    assert opd.sum() * 0.24**2 == pytest.approx(c.dn[0] * volume, rel=0.03)
    assert absorb.sum() * 0.24**2 == pytest.approx(c.mu[0] * volume, rel=0.03)


def test_rods_nearly_vanish_at_focus(rod_planes):
    # z = 0 is the mid-plane of the floor cells: for rods, their axis.
    _, planes = rod_planes
    c = (planes / planes.mean(axis=(1, 2), keepdims=True)).std(axis=(1, 2))
    assert abs(Z[np.argmin(c)]) <= 1.0  # within one 1 um slice of focus
    at = {z: c[np.argmin(abs(Z - z))] for z in (-2.0, 0.0, 2.0)}
    assert at[-2.0] > 1.5 * at[0.0] and at[2.0] > 1.5 * at[0.0]


def test_rods_dark_below_and_bright_above_focus(rod_planes):
    scene, planes = rod_planes
    mask = rod_mask(scene)
    assert mask.sum() > 200
    inside = planes[:, mask].mean(axis=1)
    assert np.all(inside[(Z <= -2) & (Z >= -8)] < 1.0 - 0.05)
    assert np.all(inside[(Z >= 2) & (Z <= 8)] > 1.0 + 0.05)


def test_rods_grow_longer_and_split_without_budding():
    scene = make_rod_scene(seed=3, n_cells=4, shape=(160, 160))
    rng = np.random.default_rng(0)
    start = len(scene.cells)
    for _ in range(12):
        scene.grow(0.5, rng)
    c = scene.cells
    assert len(c) > 1.5 * start and c.rod.all()
    assert np.all(c.bud == 0)
    assert np.all(2 * c.a <= 8.0 + 1e-9)  # longer rods divided
    assert np.all((2 * c.b >= 2.0) & (2 * c.b <= 4.0))  # width kept


def test_mixed_fields_and_bad_rod_settings():
    mixed = SampleParams(n_cells=40, rod_fraction=0.5, pillar_pitch_um=0.0)
    cells = Scene.random(mixed, np.random.default_rng(4), (96, 96), 0.24).cells
    assert 0.2 < cells.rod.mean() < 0.8
    for bad in (dict(rod_fraction=1.5), dict(rod_width_um=(3.0, 2.0)),
                dict(rod_fraction=0.5, rod_width_um=(2.0, 9.0))):
        with pytest.raises(ZFocusError):
            SampleParams(**bad).validate()
