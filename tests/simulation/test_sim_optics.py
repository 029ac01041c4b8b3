"""Through-focus behaviour of the bright-field model (noise-free intensity)."""

from __future__ import annotations

import numpy as np
import pytest
from sim_helpers import cell_mask, make_scene

from napari_zfocus.errors import ZFocusError
from napari_zfocus.simulation import OpticalRenderer, Optics, OpticsParams, render_planes
from napari_zfocus.simulation.optics import source_points

Z = np.arange(-8.0, 8.01, 0.5)
OPTICS = OpticsParams(n_source_points=12, margin_um=4.0)


def contrast(planes: np.ndarray) -> np.ndarray:
    """Std of each plane divided by its mean (a per-image normalised contrast)."""
    return (planes / planes.mean(axis=(1, 2), keepdims=True)).std(axis=(1, 2))


@pytest.fixture(scope="module")
def floor_planes():
    scene = make_scene(ceiling_fraction=0.0, seed=0)
    return scene, OpticalRenderer(OPTICS).render(scene, Z)


def test_empty_field_is_uniform_background():
    scene = make_scene(0.0)
    scene.cells = scene.cells.take(np.zeros(len(scene.cells), bool))
    planes = render_planes(scene, [-5.0, 0.0, 5.0], OPTICS)
    assert planes.dtype == np.float32 and planes.shape == (3, 64, 64)
    np.testing.assert_allclose(planes, 1.0, atol=1e-4)


def test_cells_nearly_vanish_at_focus(floor_planes):
    _, planes = floor_planes
    c = contrast(planes)
    assert abs(Z[np.argmin(c)]) <= 0.5
    # Defocus by 2 um in either direction makes the cells clearly visible again.
    at = {z: c[np.argmin(abs(Z - z))] for z in (-2.0, 0.0, 2.0)}
    assert at[-2.0] > 1.5 * at[0.0]
    assert at[2.0] > 1.5 * at[0.0]


def test_cells_dark_below_and_bright_above_focus(floor_planes):
    scene, planes = floor_planes
    mask = cell_mask(scene, ceiling=False)
    assert mask.sum() > 50
    inside = planes[:, mask].mean(axis=1)
    background = 1.0
    # z < 0 (sample below the focal plane): cells darker than the background.
    assert np.all(inside[(Z <= -2) & (Z >= -8)] < background - 0.05)
    # z > 0 (sample above the focal plane): cells act as lenses and look bright.
    assert np.all(inside[(Z >= 2) & (Z <= 8)] > background + 0.05)


def test_ceiling_cells_come_into_focus_higher_up():
    floor = make_scene(0.0, seed=1)
    ceiling = make_scene(1.0, seed=1)
    # Floor cells rest on the floor, ceiling cells hang from the 6 um ceiling.
    assert np.all(floor.cells.z - floor.cells.c < 0.35)
    assert np.all(ceiling.cells.z + ceiling.cells.c > 6.0 - 0.35)
    assert ceiling.cells.z.mean() > floor.cells.z.mean() + 1.0
    renderer = OpticalRenderer(OPTICS)
    z_floor = Z[np.argmin(contrast(renderer.render(floor, Z)))]
    z_ceiling = Z[np.argmin(contrast(renderer.render(ceiling, Z)))]
    # Ceiling cells sit ~1.5-2 um above the floor-cell layer: the focal plane must move up,
    # i.e. to smaller z, to reach them.
    assert z_ceiling <= z_floor - 1.0


def test_larger_condenser_na_blurs_defocus_more(floor_planes):
    scene, planes = floor_planes
    wide = OpticalRenderer(OpticsParams(n_source_points=12, margin_um=4.0, condenser_na=0.9))
    far = np.array([-8.0, 8.0])
    c_narrow = contrast(planes[[0, -1]])
    c_wide = contrast(wide.render(scene, far))
    assert np.all(c_wide < c_narrow)


def test_uneven_defocus_list_matches_even_stack(floor_planes):
    scene, planes = floor_planes
    picks = [3, 0, 16, 29]
    one_by_one = OpticalRenderer(OPTICS).render(scene, Z[picks])
    np.testing.assert_allclose(one_by_one, planes[picks], atol=2e-4)


def test_source_points_inside_condenser_disk():
    params = OpticsParams(condenser_na=0.4, n_source_points=16)
    pts = source_points(params, (100, 100), 0.24)
    assert 10 <= len(pts) <= 16
    f = np.hypot(*(pts / (100 * 0.24)).T)
    df = 1 / (100 * 0.24)
    assert np.all(f <= 0.4 / params.wavelength_um + df)


def test_pupil_limits_to_na_and_sampling():
    optics = Optics(OpticsParams(na=0.3, condenser_na=0.1), (64, 64), 0.24)
    assert optics.pupil.sum() < Optics(OpticsParams(na=1.3), (64, 64), 0.24).pupil.sum()


@pytest.mark.parametrize(
    "kwargs",
    [dict(na=0.0), dict(condenser_na=1.4), dict(wavelength_um=-1.0), dict(n_source_points=0)],
)
def test_bad_optics_raise(kwargs):
    with pytest.raises(ZFocusError):
        OpticsParams(**kwargs).validate()


def test_prepared_scene_renders_like_render_and_tracks_version(floor_planes):
    scene, planes = floor_planes
    prepared = OpticalRenderer(OPTICS).prepare(scene)
    assert prepared.version == scene.version
    np.testing.assert_allclose(prepared.render([Z[5], Z[20]]), planes[[5, 20]], atol=2e-4)
