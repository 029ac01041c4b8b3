"""Rasterise a :class:`~.sample.Scene` into slabs of optical path excess and absorption.

:func:`optical_layers` gives the per-layer phase and absorption maps that :mod:`.optics`
propagates through (multi-slice): cell bodies, vacuoles and buds as ellipsoids, rods as
spherocylinders, debris as spheres (or, below the pixel size, as points carrying their
volume), PDMS pillars as soft-edged cylinders spanning the chamber.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_zfocus.simulation.rods import capsule_half_thickness

if TYPE_CHECKING:
    from napari_zfocus.simulation.sample import Scene

__all__ = ["PDMS_DN", "optical_layers"]

# Refractive-index excess of PDMS (n ~ 1.41) over the aqueous medium (n ~ 1.33).
PDMS_DN = 0.08


def _chord_in_slabs(
    zc: float, half: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """Length of the vertical chord ``[zc - half, zc + half]`` inside each slab.

    Returns an array ``(L, *half.shape)`` for slabs ``[edges[k], edges[k+1]]``.
    """
    lo = np.maximum(zc - half[None], edges[:-1, None, None])
    hi = np.minimum(zc + half[None], edges[1:, None, None])
    return np.clip(hi - lo, 0.0, None)


class _Raster:
    """The slab arrays being filled (bottom slab first) and the grid they live on."""

    def __init__(
        self, scene: Scene, grid_shape: tuple[int, int], origin_px: tuple[int, int],
        layer_um: float,
    ) -> None:
        px = scene.pixel_size_um
        # Slabs cover the chamber plus what the tilt adds at the grid corners.
        gh, gw = grid_shape
        corners_x = (np.array([0, gw, 0, gw]) - origin_px[1]) * px
        corners_y = (np.array([0, 0, gh, gh]) - origin_px[0]) * px
        t = scene.height_offset(corners_x, corners_y)
        lo = min(0.0, float(t.min()))
        hi = scene.params.chamber_height_um + max(0.0, float(t.max()))
        n_layers = max(1, int(np.ceil((hi - lo) / layer_um - 1e-6)))
        self.edges_up = lo + layer_um * np.arange(n_layers + 1)
        self.opd = np.zeros((n_layers, gh, gw), np.float32)
        self.absorb = np.zeros((n_layers, gh, gw), np.float32)
        self.px = px
        self.origin_px = origin_px
        self.grid_shape = (gh, gw)

    def _window(
        self, x: float, y: float, r: float
    ) -> tuple[int, int, int, int, np.ndarray, np.ndarray] | None:
        """Grid window ``i0, i1, j0, j1`` around (x, y) um with reach ``r`` um, and the
        offsets (um) of its pixel centres from (x, y): rows ``(h, 1)``, columns ``(1, w)``."""
        px, origin_px = self.px, self.origin_px
        gh, gw = self.grid_shape
        cx, cy = x / px + origin_px[1], y / px + origin_px[0]
        i0, i1 = int(np.floor(cy - r / px)) - 1, int(np.ceil(cy + r / px)) + 2
        j0, j1 = int(np.floor(cx - r / px)) - 1, int(np.ceil(cx + r / px)) + 2
        i0, j0 = max(i0, 0), max(j0, 0)
        i1, j1 = min(i1, gh), min(j1, gw)
        if i0 >= i1 or j0 >= j1:
            return None
        yy = (np.arange(i0, i1) + 0.5 - cy)[:, None] * px  # pixel centres, um
        xx = (np.arange(j0, j1) + 0.5 - cx)[None, :] * px
        return i0, i1, j0, j1, xx, yy

    def _deposit(
        self, window: tuple[int, int, int, int], half: np.ndarray, zc: float, dn: float,
        mu: float,
    ) -> None:
        """Add a body of half thickness ``half`` (um, per window pixel) centred at height
        ``zc`` to the slabs."""
        if not half.any():
            return
        i0, i1, j0, j1 = window
        length = _chord_in_slabs(zc, half, self.edges_up)  # (L, h, w), bottom slab first
        self.opd[:, i0:i1, j0:j1] += (dn * length).astype(np.float32)
        if mu:
            self.absorb[:, i0:i1, j0:j1] += (mu * length).astype(np.float32)

    def stamp(
        self, x: float, y: float, a: float, b: float, c: float, ang: float, zc: float,
        dn: float, mu: float,
    ) -> None:
        """Add one ellipsoid (semi-axes a, b, c, centre height zc) to the slabs."""
        win = self._window(x, y, max(a, b))  # the ellipse's bounding box
        if win is None:
            return
        i0, i1, j0, j1, xx, yy = win
        ca, sa = np.cos(ang), np.sin(ang)
        u = (xx * ca + yy * sa) / a
        v = (-xx * sa + yy * ca) / b
        half = c * np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, None))
        self._deposit((i0, i1, j0, j1), half, zc, dn, mu)

    def stamp_capsule(
        self, x: float, y: float, a: float, b: float, c: float, ang: float, zc: float,
        dn: float, mu: float,
    ) -> None:
        """Add one lying spherocylinder (half length a, radius b, vertical semi-axis c)."""
        win = self._window(x, y, a)
        if win is None:
            return
        i0, i1, j0, j1, xx, yy = win
        ca, sa = np.cos(ang), np.sin(ang)
        half = capsule_half_thickness(xx * ca + yy * sa, -xx * sa + yy * ca, a, b, c)
        self._deposit((i0, i1, j0, j1), half, zc, dn, mu)

    def stamp_point(self, x: float, y: float, zc: float, dn_volume: float,
                    mu_volume: float) -> None:
        """Add a particle smaller than the pixels: its index excess x volume (um^3), spread
        bilinearly over the 4 nearest pixels of the slab holding its centre, so that what
        it scatters (set by dn x volume for a sub-resolution particle) does not depend on
        where it sits relative to the pixel grid."""
        px, origin_px = self.px, self.origin_px
        gh, gw = self.grid_shape
        fy, fx = y / px + origin_px[0] - 0.5, x / px + origin_px[1] - 0.5
        i, j = int(np.floor(fy)), int(np.floor(fx))
        k = int(np.searchsorted(self.edges_up, zc, side="right")) - 1
        if not 0 <= k < self.opd.shape[0]:
            return
        wy, wx = fy - i, fx - j
        area = px * px
        for di, dj, wgt in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx),
                            (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
            if 0 <= i + di < gh and 0 <= j + dj < gw:
                self.opd[k, i + di, j + dj] += np.float32(wgt * dn_volume / area)
                self.absorb[k, i + di, j + dj] += np.float32(wgt * mu_volume / area)


def optical_layers(
    scene: Scene,
    grid_shape: tuple[int, int],
    origin_px: tuple[int, int],
    layer_um: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise the scene into slabs of optical path excess and absorption.

    Parameters
    ----------
    scene
        The sample.
    grid_shape
        ``(rows, cols)`` of the simulation grid (field plus padding).
    origin_px
        Grid pixel (row, col) of the field's top-left pixel.
    layer_um
        Slab thickness for the multi-slice propagation.

    Returns
    -------
    opd : ndarray, float32 (L, rows, cols)
        Optical path excess (index excess x length) in um, per slab, top slab FIRST
        (the order in which the light meets them).
    absorption : ndarray, float32 (L, rows, cols)
        Amplitude attenuation exponent ``a`` per slab (transmittance ``exp(i phi - a)``).
    edges : ndarray
        Slab boundaries (heights above the floor, descending), ``L + 1`` values.
    """
    raster = _Raster(scene, grid_shape, origin_px, layer_um)
    if len(scene.cells):
        _stamp_cells(scene, raster)
    if len(scene.debris):
        _stamp_debris(scene, raster)
    if len(scene.pillars):
        _add_pillars(scene, raster)
    # Light meets the top slab first.
    return raster.opd[::-1].copy(), raster.absorb[::-1].copy(), raster.edges_up[::-1].copy()


def _stamp_cells(scene: Scene, raster: _Raster) -> None:
    """Cell bodies, their vacuoles and their buds."""
    cells = scene.cells
    tilt_h = scene.height_offset(cells.x, cells.y)
    stamp = raster.stamp
    bx, by = cells.bud_centres()
    for k in range(len(cells)):
        zc = float(cells.z[k] + tilt_h[k])
        a, b, c = float(cells.a[k]), float(cells.b[k]), float(cells.c[k])
        dn, mu = float(cells.dn[k]), float(cells.mu[k])
        if cells.rod[k]:  # no vacuole, no bud
            raster.stamp_capsule(cells.x[k], cells.y[k], a, b, c, cells.angle[k], zc, dn, mu)
            continue
        stamp(cells.x[k], cells.y[k], a, b, c, cells.angle[k], zc, dn, mu)
        if cells.vac[k] > 0:  # vacuole: watery, index close to the medium
            rv = cells.vac[k] * min(a, b)
            stamp(cells.x[k] + cells.vac_dx[k] * a, cells.y[k] + cells.vac_dy[k] * b,
                  rv, rv, min(rv, 0.8 * c), 0.0, zc, -0.7 * dn, -0.5 * mu)
        if cells.bud[k] > 0:
            s = float(cells.bud[k])
            # The bud sits at the same side of the chamber as its mother.
            zb = zc - (c - s * c) if not cells.ceiling[k] else zc + (c - s * c)
            stamp(bx[k], by[k], s * a, s * b, s * c, cells.bud_angle[k], zb, dn, mu)


def _stamp_debris(scene: Scene, raster: _Raster) -> None:
    """Debris particles: spheres, or volume-carrying points when under 1.5 px in radius (a
    sphere sampled at a few pixel centres would get its volume badly wrong)."""
    d = scene.debris
    tilt_h = scene.height_offset(d.x, d.y)
    point = d.r < 1.5 * raster.px
    volume = 4.0 / 3.0 * np.pi * d.r**3
    for k in range(len(d)):
        zc, r = float(d.z[k] + tilt_h[k]), float(d.r[k])
        dn, mu = float(d.dn[k]), float(d.mu[k])
        if point[k]:
            raster.stamp_point(d.x[k], d.y[k], zc, dn * volume[k], mu * volume[k])
        else:
            raster.stamp(d.x[k], d.y[k], r, r, r, 0.0, zc, dn, mu)


def _add_pillars(scene: Scene, raster: _Raster) -> None:
    """Vertical PDMS cylinders from floor to ceiling, edges softened over ~0.3 um (real
    moulded posts are not pixel-sharp, and a hard step would alias)."""
    p = scene.params
    px, origin_px = raster.px, raster.origin_px
    gh, gw = raster.grid_shape
    yy = ((np.arange(gh) + 0.5 - origin_px[0]) * px)[:, None]
    xx = ((np.arange(gw) + 0.5 - origin_px[1]) * px)[None, :]
    r = p.pillar_diameter_um / 2
    inside = np.zeros((gh, gw), np.float32)
    for x, y in scene.pillars:
        d = np.hypot(xx - x, yy - y)
        inside = np.maximum(inside, (0.5 * (1 - np.tanh((d - r) / 0.15))).astype(np.float32))
    chamber = _chord_in_slabs(p.chamber_height_um / 2, np.array([[p.chamber_height_um / 2]]),
                              raster.edges_up)[:, 0, 0]
    raster.opd += (PDMS_DN * chamber.astype(np.float32))[:, None, None] * inside[None]
