"""Helpers shared by the simulator tests (small 64 x 64 px scenes)."""

from __future__ import annotations

import numpy as np

from napari_zfocus.simulation import SampleParams, Scene


def make_scene(ceiling_fraction: float, seed: int = 0, n_cells: int = 12) -> Scene:
    """A 64 x 64 px field without pillars or tilt, so only cells make contrast."""
    rng = np.random.default_rng(seed)
    sample = SampleParams(n_cells=n_cells, ceiling_fraction=ceiling_fraction,
                          pillar_pitch_um=0.0, max_tilt=0.0)
    return Scene.random(sample, rng, (64, 64), 0.24, margin_um=4.0)


def cell_mask(scene: Scene, ceiling: bool, core: float = 0.5) -> np.ndarray:
    """Boolean (Y, X) mask of the inner part of the cells on the floor or the ceiling."""
    rows, cols = scene.shape
    yy, xx = (np.mgrid[0:rows, 0:cols] + 0.5) * scene.pixel_size_um
    c = scene.cells
    mask = np.zeros(scene.shape, bool)
    for k in np.flatnonzero(c.ceiling == ceiling):
        ca, sa = np.cos(c.angle[k]), np.sin(c.angle[k])
        dx, dy = xx - c.x[k], yy - c.y[k]
        u = (dx * ca + dy * sa) / c.a[k]
        v = (-dx * sa + dy * ca) / c.b[k]
        mask |= u * u + v * v < core
    return mask


def make_rod_scene(seed: int = 0, n_cells: int = 10, shape: tuple[int, int] = (96, 96)) -> Scene:
    """A field of rods only (4-8 um long), on the floor, without pillars or tilt."""
    rng = np.random.default_rng(seed)
    sample = SampleParams(n_cells=n_cells, ceiling_fraction=0.0, pillar_pitch_um=0.0,
                          max_tilt=0.0, rod_fraction=1.0, rod_length_um=(4.0, 8.0))
    return Scene.random(sample, rng, shape, 0.24, margin_um=4.0)


def rod_mask(scene: Scene, core: float = 0.5) -> np.ndarray:
    """Boolean (Y, X) mask of the inner part of the rods (axis distance < core x radius)."""
    rows, cols = scene.shape
    yy, xx = (np.mgrid[0:rows, 0:cols] + 0.5) * scene.pixel_size_um
    c = scene.cells
    mask = np.zeros(scene.shape, bool)
    for k in np.flatnonzero(c.rod):
        ca, sa = np.cos(c.angle[k]), np.sin(c.angle[k])
        dx, dy = xx - c.x[k], yy - c.y[k]
        along = np.clip(np.abs(dx * ca + dy * sa) - (c.a[k] - c.b[k]), 0, None)
        across = -dx * sa + dy * ca
        mask |= along**2 + across**2 < (core * c.b[k]) ** 2
    return mask
