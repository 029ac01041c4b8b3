"""Yeast phantoms of the waveorder test world: cells in a microfluidic chamber as thin layers.

Written from the geometry alone, independently of ``napari_zfocus.simulation``: budding yeast
are ellipsoids (3-5 um across, refractive-index excess 0.02-0.06 over the medium, weakly
absorbing) with an optional bud and a vacuole of lower index; some fields also hold
elongated (rod-shaped) cells. Cells lie on the chamber floor; a few may stick to the ceiling
6 um above. Heights are in um above the floor, lateral positions in um from the field corner.

:func:`rasterize` cuts the scene into horizontal slabs and returns, per slab, the phase
(``2 pi dn t / lambda``) and amplitude attenuation (``2 pi kappa t / lambda``) in radians,
``t`` being the exact length of the vertical chord of each body inside the slab.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Height of the microfluidic chamber (um).
CHAMBER_UM = 6.0
#: Cell counts of a 76.8 x 76.8 um field (320 px of 0.24 um), scaled with the field area.
CELLS_PER_FIELD = (5.0, 250.0)
REFERENCE_FIELD_UM2 = 76.8 * 76.8


@dataclass(frozen=True)
class Body:
    """An ellipsoid of uniform complex index excess ``dn + i kappa`` over the medium.

    ``x, y`` (lateral) and ``z`` (height above the floor) locate its centre, ``a, b`` are the
    in-plane semi-axes (``a`` along ``angle``), ``c`` the vertical semi-axis, all in um.
    A negative ``dn`` subtracts index (a vacuole inside its cell).
    """

    x: float
    y: float
    z: float
    a: float
    b: float
    c: float
    angle: float
    dn: float
    kappa: float


@dataclass
class Scene:
    """The bodies of one field and what was drawn for it."""

    bodies: list[Body]
    #: Centre heights of the floor cells (mothers and rods, not buds or vacuoles).
    floor_heights: list[float]
    n_cells: int
    n_ceiling: int

    def focus_height(self) -> float:
        """Height (um) of the plane through the middle of the floor cells."""
        return float(np.mean(self.floor_heights)) if self.floor_heights else 2.0


def draw_scene(rng: np.random.Generator, field_um: float) -> Scene:
    """Draw a random field of cells on a square field ``field_um`` wide.

    Density is drawn log-uniformly from sparse (5 cells per reference field) to packed
    (250); in about a third of the fields 2-20 % of the cells stick to the ceiling, and in a
    fifth of them 10-40 % of the cells are rods. The field is periodic (it matches the FFT
    optics): a cell across an edge shows its other part at the opposite edge.
    """
    area = field_um * field_um / REFERENCE_FIELD_UM2
    lo, hi = (math.log(v * area) for v in CELLS_PER_FIELD)
    n_target = max(1, round(math.exp(rng.uniform(lo, hi))))
    ceiling_frac = rng.uniform(0.02, 0.2) if rng.random() < 0.35 else 0.0
    rod_frac = rng.uniform(0.1, 0.4) if rng.random() < 0.2 else 0.0
    dn_mean = rng.uniform(0.02, 0.06)
    placed: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    scene = Scene([], [], 0, 0)
    misses = 0
    for i in range(n_target):
        on_ceiling = bool(i > 0 and rng.random() < ceiling_frac)  # keep a floor to focus on
        rod = bool(rng.random() < rod_frac)
        cell = _rod(rng, dn_mean) if rod else _yeast(rng, dn_mean)
        spot = _free_spot(rng, field_um, _discs(cell), placed[on_ceiling])
        if spot is None:  # no room for this one; a smaller cell may still fit
            misses += 1
            if misses > 20:  # the field is packed
                break
            continue
        for body in cell:
            z = CHAMBER_UM - body.z if on_ceiling else body.z
            scene.bodies.append(_moved(body, spot[0], spot[1], z))
        if on_ceiling:
            scene.n_ceiling += 1
        else:
            scene.floor_heights.append(cell[0].z)
        scene.n_cells += 1
    return scene


def _moved(body: Body, dx: float, dy: float, z: float) -> Body:
    return Body(body.x + dx, body.y + dy, z, body.a, body.b, body.c, body.angle,
                body.dn, body.kappa)


def _discs(cell: list[Body]) -> np.ndarray:
    """Discs ``(x, y, r)`` covering a cell's outline: one per round body, a row along a rod."""
    discs = []
    for body in cell:
        if body.dn <= 0:
            continue  # a vacuole lies inside its cell
        r = min(body.a, body.b)
        half = max(body.a, body.b) - r
        for t in np.linspace(-half, half, math.ceil(half / r) + 1):
            discs.append((body.x + t * math.cos(body.angle), body.y + t * math.sin(body.angle),
                          r))
    return np.asarray(discs)


def _free_spot(rng: np.random.Generator, field_um: float, discs: np.ndarray,
               taken: list[tuple[float, float, float]]) -> tuple[float, float] | None:
    """A position for a cell whose ``discs`` overlap no taken disc by more than 10 % of
    their radii (periodic field), or None after 60 tries. The discs are added to ``taken``."""
    others = np.asarray(taken, dtype=float).reshape(-1, 3)
    for _ in range(60):
        x, y = rng.uniform(0, field_um, size=2)
        moved = discs + np.array([x, y, 0.0])
        dx, dy = ((moved[:, None, :2] - others[None, :, :2] + field_um / 2) % field_um
                  - field_um / 2).transpose(2, 0, 1)
        if np.all(dx**2 + dy**2 >= (0.9 * (moved[:, None, 2] + others[None, :, 2])) ** 2):
            taken.extend((float(d[0]), float(d[1]), float(d[2])) for d in moved)
            return float(x), float(y)
    return None


def _yeast(rng: np.random.Generator, dn_mean: float) -> list[Body]:
    """A yeast cell at the origin on the floor: mother, maybe a bud, maybe a vacuole."""
    a = rng.uniform(1.5, 2.6)
    b = a * rng.uniform(0.85, 1.0)
    c = min(a, b) * rng.uniform(0.85, 1.0)  # a little flattened by lying on the floor
    dn = float(np.clip(dn_mean + rng.normal(0, 0.006), 0.015, 0.07))
    kappa = rng.uniform(1e-4, 4e-4)
    angle = rng.uniform(0, math.pi)
    bodies = [Body(0.0, 0.0, c, a, b, c, angle, dn, kappa)]
    if rng.random() < 0.6:  # the vacuole: lower index, close to the medium's
        s = rng.uniform(0.3, 0.55)
        off = rng.normal(0, 0.15 * a, size=2)
        bodies.append(Body(float(off[0]), float(off[1]), c, s * a, s * b, s * c, angle,
                           -dn * rng.uniform(0.5, 0.8), -0.5 * kappa))
    if rng.random() < 0.35:  # a bud touching the mother
        r = a * rng.uniform(0.35, 0.75)
        phi = rng.uniform(0, 2 * math.pi)
        dist = a + 0.7 * r
        bodies.append(Body(dist * math.cos(phi), dist * math.sin(phi), r, r, r * 0.95,
                           r, phi, dn, kappa))
    return bodies


def _rod(rng: np.random.Generator, dn_mean: float) -> list[Body]:
    """An elongated cell lying on the floor (prolate ellipsoid, 3-7 um long)."""
    a = rng.uniform(1.5, 3.5)
    r = rng.uniform(0.4, 0.7)
    dn = float(np.clip(dn_mean + rng.normal(0, 0.006), 0.015, 0.07))
    return [Body(0.0, 0.0, r, a, r, r, rng.uniform(0, math.pi), dn, rng.uniform(1e-4, 4e-4))]


def rasterize(scene: Scene, shape: tuple[int, int], pixel_um: float, slab_centres: np.ndarray,
              slab_um: float, wavelength_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Phase and amplitude attenuation (radians) of each slab, ``(L, Y, X)`` float32.

    Slab ``l`` spans heights ``slab_centres[l] +/- slab_um / 2``. Pixel centres sample the
    chord lengths (the chord shrinks continuously to 0 at a body's rim, so edges are not
    stair-cased beyond the pixel grid). The field is periodic, as in :func:`draw_scene`.
    """
    phase = np.zeros((len(slab_centres), *shape), np.float32)
    absorb = np.zeros_like(phase)
    lows, highs = slab_centres - slab_um / 2, slab_centres + slab_um / 2
    k = 2 * math.pi / wavelength_um
    for body in scene.bodies:
        where, half = _footprint(body, shape, pixel_um)
        top, bottom = body.z + half, body.z - half
        for layer in np.flatnonzero((lows < body.z + body.c) & (highs > body.z - body.c)):
            chord = np.clip(np.minimum(top, highs[layer]) - np.maximum(bottom, lows[layer]), 0,
                            None)
            phase[layer][where] += k * body.dn * chord
            absorb[layer][where] += k * body.kappa * chord
    return phase, absorb


def cell_mask(scene: Scene, shape: tuple[int, int], pixel_um: float, *,
              scale: float = 1.0) -> np.ndarray:
    """Pixels within ``scale`` times the outlines of the scene's cells, bool ``(Y, X)``."""
    mask = np.zeros(shape, bool)
    for body in scene.bodies:
        if body.dn <= 0:
            continue  # a vacuole is inside its cell already
        grown = Body(body.x, body.y, body.z, body.a * scale, body.b * scale, body.c,
                     body.angle, body.dn, body.kappa)
        where, half = _footprint(grown, shape, pixel_um)
        mask[where] |= half > 0
    return mask


def _footprint(body: Body, shape: tuple[int, int], pixel_um: float
               ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Periodic pixel window of a body's bounding box (``np.ix_`` indices) and its
    half-height over each pixel there."""
    reach = max(body.a, body.b)
    rows = _wrapped_range(body.y, reach, pixel_um, shape[0])
    cols = _wrapped_range(body.x, reach, pixel_um, shape[1])
    yy = (rows[:, None] + 0.5) * pixel_um - body.y
    xx = (cols[None, :] + 0.5) * pixel_um - body.x
    cos, sin = math.cos(body.angle), math.sin(body.angle)
    u, v = xx * cos + yy * sin, -xx * sin + yy * cos
    rho2 = (u / body.a) ** 2 + (v / body.b) ** 2
    half = body.c * np.sqrt(np.clip(1.0 - rho2, 0.0, None))
    return np.ix_(rows % shape[0], cols % shape[1]), half


def _wrapped_range(centre: float, reach: float, pixel_um: float, n: int) -> np.ndarray:
    """Unwrapped pixel indices covering ``centre +/- reach`` (at most ``n`` of them)."""
    start = math.floor((centre - reach) / pixel_um)
    stop = min(math.ceil((centre + reach) / pixel_um) + 1, start + n)
    return np.arange(start, stop)
