"""Cell populations of a simulated chamber: new cells, colony placement and growth.

The functions here act on a :class:`~.sample.Scene` (its methods :meth:`Scene.add_cells`
and :meth:`Scene.grow` call them): :func:`place_cells` seeds colonies avoiding pillars and
heavy overlap, :func:`grow_population` advances the cell cycle, division, flow drift and
crowding by some hours. Rods (:mod:`.rods`) are placed and crowd like the other cells but
elongate and split instead of budding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_zfocus.simulation.cells import Cells, child_rng
from napari_zfocus.simulation.rods import divide_rods, elongate_rods, make_rods

if TYPE_CHECKING:
    from napari_zfocus.simulation.sample import SampleParams, Scene

__all__ = ["grow_population", "new_cells", "place_cells"]

#: Candidate spots tried per cell: the first ``_NEAR_TRIES`` next to its colony's last cell,
#: the rest anywhere in the region (colony crowded).
_TRIES = 30
_NEAR_TRIES = 20


def new_cells(
    n: int, params: SampleParams, rng: np.random.Generator, *, adult: bool = True
) -> Cells:
    """Draw ``n`` cells with random shape and contents (positions left at 0)."""
    lo, hi = params.cell_diameter_um
    d = rng.uniform(lo, hi, n) if adult else rng.uniform(0.55 * lo, 0.8 * lo, n)
    elong = rng.uniform(1.0, 1.25, n)  # yeast are slightly prolate
    a = 0.5 * d * np.sqrt(elong)
    b = 0.5 * d / np.sqrt(elong)
    c = 0.5 * d * rng.uniform(0.85, 1.0, n)  # a little flattened by gravity / the chamber
    has_vac = rng.random(n) < params.vacuole_probability
    has_bud = rng.random(n) < params.bud_probability
    return Cells(
        x=np.zeros(n), y=np.zeros(n), z=np.zeros(n), a=a, b=b, c=c,
        angle=rng.uniform(0, np.pi, n),
        dn=rng.uniform(*params.cell_dn, n),
        mu=rng.uniform(*params.cell_absorption_per_um, n),
        vac=np.where(has_vac, rng.uniform(0.3, 0.55, n), 0.0),
        vac_dx=rng.uniform(-0.25, 0.25, n),
        vac_dy=rng.uniform(-0.25, 0.25, n),
        bud=np.where(has_bud, rng.uniform(0.25, 0.75, n), 0.0),
        bud_angle=rng.uniform(0, 2 * np.pi, n),
        phase=np.where(has_bud, rng.uniform(0.3, 0.95, n), rng.uniform(0.0, 0.3, n)),
        ceiling=np.zeros(n, dtype=bool),
        rod=np.zeros(n, dtype=bool),
    )


class _Discs:
    """Occupied discs (existing cells, then each placed one) in preallocated buffers:
    checking a candidate is one vectorised distance test."""

    def __init__(self, cells: Cells, room: int) -> None:
        self.x = np.concatenate([cells.x, np.zeros(room)])
        self.y = np.concatenate([cells.y, np.zeros(room)])
        self.r = np.concatenate([cells.radius, np.zeros(room)])
        self.n = len(cells)

    def add(self, x: float, y: float, r: float) -> None:
        self.x[self.n], self.y[self.n], self.r[self.n] = x, y, r
        self.n += 1


def place_cells(
    scene: Scene,
    n: int,
    rng: np.random.Generator,
    *,
    ceiling_fraction: float | None = None,
    region: tuple[float, float, float, float] | None = None,
) -> int:
    """Add up to ``n`` cells to ``scene`` in colonies; see :meth:`Scene.add_cells`."""
    if n <= 0:
        return 0
    p = scene.params
    frac = p.ceiling_fraction if ceiling_fraction is None else ceiling_fraction
    h, w = scene.field_um
    m = scene.margin_um
    box = region if region is not None else (-m, -m, w + m, h + m)
    new = new_cells(n, p, rng)
    new.ceiling = rng.random(n) < frac
    if p.rod_fraction > 0:
        # Rods draw from their own stream: without rods, placement is what it always was.
        rod_rng = child_rng(rng)
        make_rods(new, rod_rng.random(n) < p.rod_fraction, p, rod_rng)
    n_colonies = max(1, int(round(n / max(p.clusters, 1.0))))
    x0, y0, x1, y1 = box
    last = np.stack([rng.uniform(x0, x1, n_colonies), rng.uniform(y0, y1, n_colonies)], 1)
    discs = _Discs(scene.cells, n)
    placed = np.zeros(n, dtype=bool)
    for i in range(n):
        col = i % n_colonies  # colonies grow outward from their most recent cell
        r = float(new.radius[i])
        spot = _free_spot(scene, rng, last[col], r, box, discs)
        if spot is None:
            continue
        new.x[i], new.y[i] = spot
        discs.add(spot[0], spot[1], r)
        last[col] = spot
        placed[i] = True
    new = new.take(placed)
    new.z = np.where(new.ceiling, scene._ceiling_height(new.c, rng),
                     scene._floor_height(new.c, rng))
    scene.cells = scene.cells.concat(new)
    scene.version += 1
    return int(placed.sum())


def _free_spot(
    scene: Scene,
    rng: np.random.Generator,
    last: np.ndarray,
    r: float,
    box: tuple[float, float, float, float],
    discs: _Discs,
) -> tuple[float, float] | None:
    """A spot for a cell of radius ``r`` clear of pillars and cells, or ``None``."""
    x0, y0, x1, y1 = box
    near = np.arange(_TRIES) < _NEAR_TRIES
    ang = rng.uniform(0, 2 * np.pi, _TRIES)
    dist = rng.uniform(0.0, 2.2 * r, _TRIES)
    dist[0] = 0.0
    cand_x = np.where(near, last[0] + dist * np.cos(ang), rng.uniform(x0, x1, _TRIES))
    cand_y = np.where(near, last[1] + dist * np.sin(ang), rng.uniform(y0, y1, _TRIES))
    ok = np.ones(_TRIES, dtype=bool)
    pil = scene.pillars
    if len(pil):
        pil_r = scene.params.pillar_diameter_um / 2
        dp = np.hypot(cand_x[:, None] - pil[None, :, 0], cand_y[:, None] - pil[None, :, 1])
        ok &= np.all(dp >= pil_r + r, axis=1)
    k = discs.n
    if k:
        dc = np.hypot(cand_x[:, None] - discs.x[None, :k], cand_y[:, None] - discs.y[None, :k])
        ok &= np.all(dc >= 0.85 * (discs.r[None, :k] + r), axis=1)
    hit = np.flatnonzero(ok)
    if hit.size == 0:
        return None
    return cand_x[hit[0]], cand_y[hit[0]]


def grow_population(
    scene: Scene, dt_h: float, rng: np.random.Generator, *, doubling_h: float = 2.0
) -> None:
    """Advance ``scene``'s population by ``dt_h`` hours; see :meth:`Scene.grow`."""
    if dt_h <= 0:
        return
    p = scene.params
    cells = scene.cells
    h, w = scene.field_um
    m = scene.margin_um
    area = (h + 2 * m) * (w + 2 * m)
    mean_r = 0.25 * sum(p.cell_diameter_um)
    capacity = 0.8 * area / (np.pi * mean_r**2)  # ~80 % surface coverage
    crowd = max(0.0, 1.0 - len(cells) / capacity)
    if len(cells):
        speed = crowd * rng.uniform(0.8, 1.2, len(cells))  # cells vary a little
        step = dt_h / doubling_h * speed
        cells.phase = cells.phase + step
        elongate_rods(cells, step)
        # A bud appears at phase 0.3 and grows to ~0.8 of the mother's radius (not on rods).
        budding = (cells.phase >= 0.3) & ~cells.rod
        newly = budding & (cells.bud <= 0)
        angles = rng.uniform(0, 2 * np.pi, len(cells))
        cells.bud_angle = np.where(newly, angles, cells.bud_angle)
        cells.bud = np.where(budding, 0.2 + 0.6 * np.clip((cells.phase - 0.3) / 0.7, 0, 1), 0.0)
        # Daughters grow towards adult size.
        lo = p.cell_diameter_um[0] / 2
        small = (cells.radius < lo) & ~cells.rod
        grow = np.where(small, 1.0 + 0.25 * dt_h, 1.0)
        dc = cells.c * (grow - 1.0)
        cells.a, cells.b, cells.c = cells.a * grow, cells.b * grow, cells.c * grow
        # A growing cell stays resting on the floor (or hanging from the ceiling).
        cells.z = np.where(cells.ceiling, cells.z - dc, cells.z + dc)
        cells.z = np.clip(cells.z, cells.c, np.maximum(cells.c, p.chamber_height_um - cells.c))
        divide_cells(scene, rng)
        divide_rods(scene, rng)
    drift_cells(scene, dt_h, rng)
    relax_cells(scene)
    scene.version += 1


def divide_cells(scene: Scene, rng: np.random.Generator) -> None:
    """Cells at the end of their cycle release their bud as a new cell (rods: see
    :func:`.rods.divide_rods`)."""
    cells = scene.cells
    ready = np.flatnonzero((cells.phase >= 1.0) & ~cells.rod)
    if ready.size == 0:
        return
    bx, by = cells.bud_centres()
    kids = new_cells(ready.size, scene.params, rng, adult=False)
    mother = cells.take(ready)
    scale = np.clip(mother.bud, 0.5, 0.85)
    kids.a, kids.b, kids.c = mother.a * scale, mother.b * scale, mother.c * scale
    kids.x, kids.y = bx[ready], by[ready]
    kids.ceiling = mother.ceiling.copy()
    kids.z = np.where(kids.ceiling, scene._ceiling_height(kids.c, rng),
                      scene._floor_height(kids.c, rng))
    kids.bud = np.zeros(ready.size)
    kids.phase = rng.uniform(-0.3, 0.0, ready.size)  # daughters wait longer (G1)
    cells.phase[ready] = 0.0
    cells.bud[ready] = 0.0
    scene.cells = cells.concat(kids)


def drift_cells(scene: Scene, dt_h: float, rng: np.random.Generator) -> None:
    """Flow drift and jitter; cells leaving the field + margin go, colonies wash in."""
    # Flow velocity: Ornstein-Uhlenbeck process (~1 h memory, ~1 um/h rms), so the
    # statistics do not depend on how finely the caller steps time.
    decay = np.exp(-dt_h / 1.0)
    scene.drift_um_per_h = (decay * scene.drift_um_per_h
                            + rng.normal(0, 1.0 * np.sqrt(1 - decay**2), 2))
    cells = scene.cells
    if len(cells):
        # Floor cells stick better than ceiling cells; all jitter a little.
        mobility = np.where(cells.ceiling, 1.5, 1.0)
        cells.x = cells.x + mobility * scene.drift_um_per_h[0] * dt_h
        cells.y = cells.y + mobility * scene.drift_um_per_h[1] * dt_h
        jitter = 0.15 * np.sqrt(dt_h)
        cells.x = cells.x + rng.normal(0, jitter, len(cells))
        cells.y = cells.y + rng.normal(0, jitter, len(cells))
    h, w = scene.field_um
    m = scene.margin_um
    inside = (cells.x > -m) & (cells.x < w + m) & (cells.y > -m) & (cells.y < h + m)
    scene.cells = cells.take(inside)
    # Colonies wash in from upstream at ~0.3 per hour.
    if rng.random() < 0.3 * dt_h:
        v = scene.drift_um_per_h
        ang = np.arctan2(v[1], v[0]) + np.pi if np.hypot(*v) > 0 else rng.uniform(0, 2 * np.pi)
        cx = w / 2 + (w / 2 + m * 0.5) * np.cos(ang)
        cy = h / 2 + (h / 2 + m * 0.5) * np.sin(ang)
        scene.add_cells(int(rng.integers(3, 15)), rng,
                        region=(cx - 5, cy - 5, cx + 5, cy + 5))


def relax_cells(scene: Scene, iterations: int = 3) -> None:
    """Push overlapping cells apart and out of pillars (cheap soft-body step)."""
    cells = scene.cells
    n = len(cells)
    if n == 0:
        return
    for _ in range(iterations):
        dx = cells.x[:, None] - cells.x[None, :]
        dy = cells.y[:, None] - cells.y[None, :]
        d = np.hypot(dx, dy) + np.eye(n)
        same_layer = cells.ceiling[:, None] == cells.ceiling[None, :]
        overlap = np.clip(0.9 * (cells.radius[:, None] + cells.radius[None, :]) - d, 0, None)
        overlap *= same_layer
        np.fill_diagonal(overlap, 0.0)
        if not overlap.any():
            break
        cells.x = cells.x + 0.5 * (overlap * dx / d).sum(1)
        cells.y = cells.y + 0.5 * (overlap * dy / d).sum(1)
    for px, py in scene.pillars:
        dx, dy = cells.x - px, cells.y - py
        d = np.hypot(dx, dy) + 1e-6
        need = scene.params.pillar_diameter_um / 2 + cells.radius
        push = np.clip(need - d, 0, None)
        cells.x = cells.x + push * dx / d
        cells.y = cells.y + push * dy / d
