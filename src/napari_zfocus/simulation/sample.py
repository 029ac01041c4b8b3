"""The sample: budding yeast in a ~6 um microfluidic chamber with PDMS pillars.

A :class:`Scene` is one field of view of the chamber. It holds

* cells as a structure of arrays (:class:`Cells`): centre (x, y) in um inside the field,
  centre height above the chamber floor, ellipsoid semi-axes, orientation, refractive-index
  excess, absorption, an optional vacuole and an optional bud;
* PDMS pillars (10 um cylinders on a 50 um grid) that span the whole chamber height;
* a small tilt of the sample plane (the chamber is never perfectly level);
* ``focus_height_um``: the height of the floor-cell layer (median centre height of the cells
  on the floor). Defocus z = 0 means the focal plane lies at this height.

Scenes are created with :meth:`Scene.random` and evolved with :meth:`Scene.grow` (budding,
division, crowding, flow drift, clusters floating in and out), which is what the simulated
microscope uses for 24 h time-lapses. :func:`optical_layers` turns a scene into the per-layer
optical path (phase) and absorption maps that :mod:`.optics` propagates through.

Coordinates: x to the right, y down (image rows), heights in um above the chamber floor.
Light travels from the condenser above the chamber down to the inverted objective.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from napari_zfocus.errors import ZFocusError

# Refractive-index excess of PDMS (n ~ 1.41) over the aqueous medium (n ~ 1.33).
PDMS_DN = 0.08


@dataclass
class SampleParams:
    """What is in the chamber (all lengths in um).

    Parameters
    ----------
    n_cells
        Number of cells in the field (+ margin, scaled by area) at creation.
    ceiling_fraction
        Fraction of cells stuck to the chamber ceiling instead of lying on the floor.
    chamber_height_um
        Floor-to-ceiling height of the microfluidic chamber.
    cell_diameter_um
        Range of adult cell diameters (uniformly drawn).
    cell_dn
        Range of the refractive-index excess of cytoplasm over the medium.
    cell_absorption_per_um
        Range of the amplitude attenuation per um of cell thickness (weak absorber).
    bud_probability, vacuole_probability
        Fraction of cells that carry a bud / a visible vacuole at creation.
    pillar_diameter_um, pillar_pitch_um
        PDMS support pillars on a square grid; ``pillar_pitch_um <= 0`` removes them.
    max_tilt
        Largest slope of the sample plane (um of height per um of x or y).
    clusters
        Mean number of cells per colony when placing cells (yeast grow in clusters).
    """

    n_cells: int = 40
    ceiling_fraction: float = 0.1
    chamber_height_um: float = 6.0
    cell_diameter_um: tuple[float, float] = (3.0, 6.0)
    cell_dn: tuple[float, float] = (0.03, 0.05)
    cell_absorption_per_um: tuple[float, float] = (0.003, 0.015)
    bud_probability: float = 0.5
    vacuole_probability: float = 0.7
    pillar_diameter_um: float = 10.0
    pillar_pitch_um: float = 50.0
    max_tilt: float = 0.004
    clusters: float = 6.0

    def validate(self) -> None:
        """Raise :class:`ZFocusError` when a value is outside its physical range."""
        if self.n_cells < 0:
            raise ZFocusError(f"sample: n_cells must be >= 0, got {self.n_cells}")
        if not 0.0 <= self.ceiling_fraction <= 1.0:
            raise ZFocusError(
                f"sample: ceiling_fraction must be in [0, 1], got {self.ceiling_fraction}"
            )
        lo, hi = self.cell_diameter_um
        if not 0.5 <= lo <= hi:
            raise ZFocusError(f"sample: bad cell_diameter_um range {self.cell_diameter_um}")
        if self.chamber_height_um < 0.8 * hi:
            raise ZFocusError(
                f"sample: chamber_height_um {self.chamber_height_um} is too low for "
                f"{hi} um cells"
            )


_CELL_FIELDS = (
    "x", "y", "z", "a", "b", "c", "angle", "dn", "mu",
    "vac", "vac_dx", "vac_dy", "bud", "bud_angle", "phase", "ceiling",
)


@dataclass
class Cells:
    """Structure of arrays, one entry per cell (lengths in um, angles in rad).

    ``x, y``: centre in field coordinates; ``z``: centre height above the floor;
    ``a, b, c``: semi-axes (a along ``angle``, c vertical); ``dn``: index excess; ``mu``:
    amplitude absorption per um; ``vac``: vacuole radius as a fraction of ``min(a, b)``
    (0 = none) at offset ``(vac_dx, vac_dy)`` (fractions of a, b); ``bud``: bud radius as a
    fraction of the mother's (0 = none) in direction ``bud_angle``; ``phase``: cell-cycle
    progress 0..1 (division at 1); ``ceiling``: stuck to the ceiling.
    """

    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    z: np.ndarray = field(default_factory=lambda: np.zeros(0))
    a: np.ndarray = field(default_factory=lambda: np.zeros(0))
    b: np.ndarray = field(default_factory=lambda: np.zeros(0))
    c: np.ndarray = field(default_factory=lambda: np.zeros(0))
    angle: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dn: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vac: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vac_dx: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vac_dy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bud: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bud_angle: np.ndarray = field(default_factory=lambda: np.zeros(0))
    phase: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ceiling: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: np.ndarray) -> Cells:
        """Return the cells selected by a boolean mask or an index array."""
        return Cells(**{k: getattr(self, k)[index] for k in _CELL_FIELDS})

    def concat(self, other: Cells) -> Cells:
        """Return these cells followed by ``other``."""
        return Cells(
            **{k: np.concatenate([getattr(self, k), getattr(other, k)]) for k in _CELL_FIELDS}
        )

    @property
    def radius(self) -> np.ndarray:
        """Mean lateral radius of each cell body, um."""
        return 0.5 * (self.a + self.b)

    def bud_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres (x, y) of the buds (meaningful where ``bud > 0``)."""
        r = self.radius * (1.0 + 0.85 * self.bud)
        return self.x + r * np.cos(self.bud_angle), self.y + r * np.sin(self.bud_angle)


def _new_cells(
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
    )


@dataclass
class Scene:
    """One field of view of the chamber; see the module docstring.

    Attributes
    ----------
    shape
        Camera field (rows, columns) in pixels.
    pixel_size_um
        Pixel size in the sample plane.
    params
        The :class:`SampleParams` the scene was made with (used by :meth:`grow`).
    cells
        The cells (also those in the margin around the field, which scatter light into it).
    pillars
        ``(P, 2)`` pillar centres (x, y) in um.
    tilt
        Slope (d height / dx, d height / dy) of the sample plane about the field centre.
    focus_height_um
        Height above the floor of the floor-cell layer (defocus 0).
    drift_um_per_h
        Current flow drift velocity (x, y) used by :meth:`grow`.
    margin_um
        Width of the band around the field that is also populated.
    """

    shape: tuple[int, int]
    pixel_size_um: float
    params: SampleParams
    cells: Cells
    pillars: np.ndarray
    tilt: tuple[float, float] = (0.0, 0.0)
    focus_height_um: float = 2.0
    drift_um_per_h: np.ndarray = field(default_factory=lambda: np.zeros(2))
    margin_um: float = 8.0
    version: int = 0  # bumped on every change so renderers can cache

    # ------------------------------------------------------------------ geometry
    @property
    def field_um(self) -> tuple[float, float]:
        """Field size (height, width) in um."""
        return self.shape[0] * self.pixel_size_um, self.shape[1] * self.pixel_size_um

    def height_offset(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height change of the tilted sample plane at (x, y), relative to the centre."""
        h, w = self.field_um
        return self.tilt[0] * (x - w / 2) + self.tilt[1] * (y - h / 2)

    def _floor_height(self, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # Cells settle on the floor: centre one semi-axis up, plus a small gap (but never
        # through the ceiling).
        z = c + rng.uniform(0.0, 0.3, c.shape)
        return np.maximum(np.minimum(z, self.params.chamber_height_um - c), c)

    def _ceiling_height(self, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # Hanging from the ceiling, but a tall cell cannot poke through the floor.
        z = self.params.chamber_height_um - c - rng.uniform(0.0, 0.3, c.shape)
        return np.maximum(z, c)

    # ------------------------------------------------------------------ creation
    @classmethod
    def random(
        cls,
        params: SampleParams,
        rng: np.random.Generator,
        shape: tuple[int, int] = (320, 320),
        pixel_size_um: float = 0.24,
        *,
        tilt: tuple[float, float] | None = None,
        margin_um: float = 8.0,
    ) -> Scene:
        """Create a random field of view.

        Parameters
        ----------
        params
            What to put in the chamber.
        rng
            Source of randomness (the scene is a pure function of its state).
        shape, pixel_size_um
            Camera field in pixels and its pixel size in um.
        tilt
            Sample-plane slope; ``None`` draws one within ``params.max_tilt``.
        margin_um
            Band around the field that is populated too (out-of-field cells blur into view).
        """
        params.validate()
        if pixel_size_um <= 0 or min(shape) < 8:
            raise ZFocusError(f"scene: bad field {shape} px at {pixel_size_um} um/px")
        if tilt is None:
            tilt = tuple(rng.uniform(-params.max_tilt, params.max_tilt, 2))
        scene = cls(
            shape=(int(shape[0]), int(shape[1])),
            pixel_size_um=float(pixel_size_um),
            params=params,
            cells=Cells(),
            pillars=np.zeros((0, 2)),
            tilt=(float(tilt[0]), float(tilt[1])),
            margin_um=float(margin_um),
        )
        scene.pillars = scene._random_pillars(rng)
        # n_cells counts cells inside the field; the margin gets the same density.
        h, w = scene.field_um
        area_ratio = (h + 2 * margin_um) * (w + 2 * margin_um) / (h * w)
        scene.add_cells(int(round(params.n_cells * area_ratio)), rng)
        floor = ~scene.cells.ceiling
        if floor.any():
            scene.focus_height_um = float(np.median(scene.cells.z[floor]))
        else:  # no floor cells: where a typical one would be
            scene.focus_height_um = float(np.mean(params.cell_diameter_um) * 0.46 + 0.15)
        scene.drift_um_per_h = rng.normal(0.0, 1.0, 2)
        return scene

    def _random_pillars(self, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        if p.pillar_pitch_um <= 0 or p.pillar_diameter_um <= 0:
            return np.zeros((0, 2))
        h, w = self.field_um
        off = rng.uniform(0, p.pillar_pitch_um, 2)
        r = p.pillar_diameter_um / 2 + self.margin_um
        xs = np.arange(off[0] - p.pillar_pitch_um * np.ceil((r + off[0]) / p.pillar_pitch_um),
                       w + r, p.pillar_pitch_um)
        ys = np.arange(off[1] - p.pillar_pitch_um * np.ceil((r + off[1]) / p.pillar_pitch_um),
                       h + r, p.pillar_pitch_um)
        gx, gy = np.meshgrid(xs, ys)
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        keep = (pts[:, 0] > -r) & (pts[:, 0] < w + r) & (pts[:, 1] > -r) & (pts[:, 1] < h + r)
        return pts[keep]

    def add_cells(
        self,
        n: int,
        rng: np.random.Generator,
        *,
        ceiling_fraction: float | None = None,
        region: tuple[float, float, float, float] | None = None,
    ) -> int:
        """Add up to ``n`` cells in colonies, avoiding pillars and heavy overlap.

        Parameters
        ----------
        n
            Number of cells wanted.
        rng
            Randomness.
        ceiling_fraction
            Override of ``params.ceiling_fraction``.
        region
            ``(x0, y0, x1, y1)`` in um where colonies may start (default: field + margin).

        Returns
        -------
        int
            The number of cells actually placed (fewer when the field is full).
        """
        if n <= 0:
            return 0
        p = self.params
        frac = p.ceiling_fraction if ceiling_fraction is None else ceiling_fraction
        h, w = self.field_um
        m = self.margin_um
        x0, y0, x1, y1 = region if region is not None else (-m, -m, w + m, h + m)
        new = _new_cells(n, p, rng)
        new.ceiling = rng.random(n) < frac
        n_colonies = max(1, int(round(n / max(p.clusters, 1.0))))
        seeds = np.stack([rng.uniform(x0, x1, n_colonies), rng.uniform(y0, y1, n_colonies)], 1)
        # Occupied discs (existing cells, then each placed one) in preallocated buffers:
        # checking a candidate is one vectorised distance test.
        n_old = len(self.cells)
        occ_x = np.concatenate([self.cells.x, np.zeros(n)])
        occ_y = np.concatenate([self.cells.y, np.zeros(n)])
        occ_r = np.concatenate([self.cells.radius, np.zeros(n)])
        occ_n = n_old
        pil = self.pillars
        pil_r = p.pillar_diameter_um / 2
        placed = np.zeros(n, dtype=bool)
        last = seeds.copy()  # colonies grow outward from their most recent cell
        for i in range(n):
            col = i % n_colonies
            r = float(new.radius[i])
            # 20 tries next to the colony's last cell, then 10 anywhere (colony crowded).
            ang = rng.uniform(0, 2 * np.pi, 30)
            dist = rng.uniform(0.0, 2.2 * r, 30)
            dist[0] = 0.0
            cand_x = np.where(np.arange(30) < 20, last[col, 0] + dist * np.cos(ang),
                              rng.uniform(x0, x1, 30))
            cand_y = np.where(np.arange(30) < 20, last[col, 1] + dist * np.sin(ang),
                              rng.uniform(y0, y1, 30))
            ok = np.ones(30, dtype=bool)
            if len(pil):
                dp = np.hypot(cand_x[:, None] - pil[None, :, 0], cand_y[:, None] - pil[None, :, 1])
                ok &= np.all(dp >= pil_r + r, axis=1)
            if occ_n:
                dc = np.hypot(cand_x[:, None] - occ_x[None, :occ_n],
                              cand_y[:, None] - occ_y[None, :occ_n])
                ok &= np.all(dc >= 0.85 * (occ_r[None, :occ_n] + r), axis=1)
            hit = np.flatnonzero(ok)
            if hit.size == 0:
                continue
            x, y = cand_x[hit[0]], cand_y[hit[0]]
            new.x[i], new.y[i] = x, y
            occ_x[occ_n], occ_y[occ_n], occ_r[occ_n] = x, y, r
            occ_n += 1
            last[col] = (x, y)
            placed[i] = True
        new = new.take(placed)
        new.z = np.where(new.ceiling, self._ceiling_height(new.c, rng),
                         self._floor_height(new.c, rng))
        self.cells = self.cells.concat(new)
        self.version += 1
        return int(placed.sum())

    # ------------------------------------------------------------------ time
    def grow(self, dt_h: float, rng: np.random.Generator, *, doubling_h: float = 2.0) -> None:
        """Advance the population by ``dt_h`` hours.

        Cells progress through the cell cycle (bud appears at phase 0.3 and grows; at phase
        1 the bud separates as a new cell), growth slows as the field fills up (so ~15 cells
        become several hundred in ~24 h, not millions), crowded cells push each other apart,
        the medium flow drifts everything slowly (a random walk of the drift velocity), cells
        leaving the field + margin are dropped, and now and then a colony floats in at the
        upstream edge.
        """
        if dt_h <= 0:
            return
        p = self.params
        cells = self.cells
        h, w = self.field_um
        m = self.margin_um
        area = (h + 2 * m) * (w + 2 * m)
        mean_r = 0.25 * sum(p.cell_diameter_um)
        capacity = 0.8 * area / (np.pi * mean_r**2)  # ~80 % surface coverage
        crowd = max(0.0, 1.0 - len(cells) / capacity)
        if len(cells):
            speed = crowd * rng.uniform(0.8, 1.2, len(cells))  # cells vary a little
            cells.phase = cells.phase + dt_h / doubling_h * speed
            # A bud appears at phase 0.3 and grows to ~0.8 of the mother's radius.
            budding = cells.phase >= 0.3
            newly = budding & (cells.bud <= 0)
            angles = rng.uniform(0, 2 * np.pi, len(cells))
            cells.bud_angle = np.where(newly, angles, cells.bud_angle)
            cells.bud = np.where(budding, 0.2 + 0.6 * np.clip((cells.phase - 0.3) / 0.7, 0, 1), 0.0)
            # Daughters grow towards adult size.
            lo = p.cell_diameter_um[0] / 2
            small = cells.radius < lo
            grow = np.where(small, 1.0 + 0.25 * dt_h, 1.0)
            dc = cells.c * (grow - 1.0)
            cells.a, cells.b, cells.c = cells.a * grow, cells.b * grow, cells.c * grow
            # A growing cell stays resting on the floor (or hanging from the ceiling).
            cells.z = np.where(cells.ceiling, cells.z - dc, cells.z + dc)
            cells.z = np.clip(cells.z, cells.c, np.maximum(cells.c, p.chamber_height_um - cells.c))
            self._divide(rng)
        self._drift(dt_h, rng)
        self._relax()
        self.version += 1

    def _divide(self, rng: np.random.Generator) -> None:
        cells = self.cells
        ready = np.flatnonzero(cells.phase >= 1.0)
        if ready.size == 0:
            return
        bx, by = cells.bud_centres()
        kids = _new_cells(ready.size, self.params, rng, adult=False)
        mother = cells.take(ready)
        scale = np.clip(mother.bud, 0.5, 0.85)
        kids.a, kids.b, kids.c = mother.a * scale, mother.b * scale, mother.c * scale
        kids.x, kids.y = bx[ready], by[ready]
        kids.ceiling = mother.ceiling.copy()
        kids.z = np.where(kids.ceiling, self._ceiling_height(kids.c, rng),
                          self._floor_height(kids.c, rng))
        kids.bud = np.zeros(ready.size)
        kids.phase = rng.uniform(-0.3, 0.0, ready.size)  # daughters wait longer (G1)
        cells.phase[ready] = 0.0
        cells.bud[ready] = 0.0
        self.cells = cells.concat(kids)

    def _drift(self, dt_h: float, rng: np.random.Generator) -> None:
        # Flow velocity: Ornstein-Uhlenbeck process (~1 h memory, ~1 um/h rms), so the
        # statistics do not depend on how finely the caller steps time.
        decay = np.exp(-dt_h / 1.0)
        self.drift_um_per_h = (decay * self.drift_um_per_h
                               + rng.normal(0, 1.0 * np.sqrt(1 - decay**2), 2))
        cells = self.cells
        if len(cells):
            # Floor cells stick better than ceiling cells; all jitter a little.
            mobility = np.where(cells.ceiling, 1.5, 1.0)
            cells.x = cells.x + mobility * self.drift_um_per_h[0] * dt_h
            cells.y = cells.y + mobility * self.drift_um_per_h[1] * dt_h
            jitter = 0.15 * np.sqrt(dt_h)
            cells.x = cells.x + rng.normal(0, jitter, len(cells))
            cells.y = cells.y + rng.normal(0, jitter, len(cells))
        h, w = self.field_um
        m = self.margin_um
        inside = (cells.x > -m) & (cells.x < w + m) & (cells.y > -m) & (cells.y < h + m)
        self.cells = cells.take(inside)
        # Colonies wash in from upstream at ~0.3 per hour.
        if rng.random() < 0.3 * dt_h:
            v = self.drift_um_per_h
            ang = np.arctan2(v[1], v[0]) + np.pi if np.hypot(*v) > 0 else rng.uniform(0, 2 * np.pi)
            cx = w / 2 + (w / 2 + m * 0.5) * np.cos(ang)
            cy = h / 2 + (h / 2 + m * 0.5) * np.sin(ang)
            self.add_cells(int(rng.integers(3, 15)), rng,
                           region=(cx - 5, cy - 5, cx + 5, cy + 5))

    def _relax(self, iterations: int = 3) -> None:
        """Push overlapping cells apart and out of pillars (cheap soft-body step)."""
        cells = self.cells
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
        for px, py in self.pillars:
            dx, dy = cells.x - px, cells.y - py
            d = np.hypot(dx, dy) + 1e-6
            need = self.params.pillar_diameter_um / 2 + cells.radius
            push = np.clip(need - d, 0, None)
            cells.x = cells.x + push * dx / d
            cells.y = cells.y + push * dy / d

    def copy(self) -> Scene:
        """A deep copy (cells and pillars are copied)."""
        return dataclasses.replace(
            self,
            cells=self.cells.take(np.arange(len(self.cells))),
            pillars=self.pillars.copy(),
            drift_um_per_h=self.drift_um_per_h.copy(),
        )

    def n_in_field(self) -> int:
        """Number of cell centres inside the camera field."""
        h, w = self.field_um
        c = self.cells
        return int(np.sum((c.x >= 0) & (c.x < w) & (c.y >= 0) & (c.y < h)))


# ---------------------------------------------------------------------- optical layers
def _chord_in_slabs(
    zc: float, half: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """Length of the vertical chord ``[zc - half, zc + half]`` inside each slab.

    Returns an array ``(L, *half.shape)`` for slabs ``[edges[k], edges[k+1]]``.
    """
    lo = np.maximum(zc - half[None], edges[:-1, None, None])
    hi = np.minimum(zc + half[None], edges[1:, None, None])
    return np.clip(hi - lo, 0.0, None)


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
    p = scene.params
    px = scene.pixel_size_um
    cells = scene.cells
    tilt_h = scene.height_offset(cells.x, cells.y) if len(cells) else np.zeros(0)
    # Slabs cover the chamber plus what the tilt adds at the grid corners.
    gh, gw = grid_shape
    corners_x = (np.array([0, gw, 0, gw]) - origin_px[1]) * px
    corners_y = (np.array([0, 0, gh, gh]) - origin_px[0]) * px
    t = scene.height_offset(corners_x, corners_y)
    lo = min(0.0, float(t.min()))
    hi = p.chamber_height_um + max(0.0, float(t.max()))
    n_layers = max(1, int(np.ceil((hi - lo) / layer_um - 1e-6)))
    edges_up = lo + layer_um * np.arange(n_layers + 1)
    opd = np.zeros((n_layers, gh, gw), np.float32)
    absorb = np.zeros((n_layers, gh, gw), np.float32)

    def stamp(x, y, a, b, c, ang, zc, dn, mu) -> None:
        # Pixel window of the ellipse's bounding box on the grid.
        r = max(a, b)
        cx, cy = x / px + origin_px[1], y / px + origin_px[0]
        i0, i1 = int(np.floor(cy - r / px)) - 1, int(np.ceil(cy + r / px)) + 2
        j0, j1 = int(np.floor(cx - r / px)) - 1, int(np.ceil(cx + r / px)) + 2
        i0, j0 = max(i0, 0), max(j0, 0)
        i1, j1 = min(i1, gh), min(j1, gw)
        if i0 >= i1 or j0 >= j1:
            return
        yy = (np.arange(i0, i1) + 0.5 - cy)[:, None] * px  # pixel centres, um
        xx = (np.arange(j0, j1) + 0.5 - cx)[None, :] * px
        ca, sa = np.cos(ang), np.sin(ang)
        u = (xx * ca + yy * sa) / a
        v = (-xx * sa + yy * ca) / b
        half = c * np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, None))
        if not half.any():
            return
        length = _chord_in_slabs(zc, half, edges_up)  # (L, h, w), bottom slab first
        opd[:, i0:i1, j0:j1] += (dn * length).astype(np.float32)
        if mu:
            absorb[:, i0:i1, j0:j1] += (mu * length).astype(np.float32)

    if len(cells):
        bx, by = cells.bud_centres()
        for k in range(len(cells)):
            zc = float(cells.z[k] + tilt_h[k])
            a, b, c = float(cells.a[k]), float(cells.b[k]), float(cells.c[k])
            dn, mu = float(cells.dn[k]), float(cells.mu[k])
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

    if len(scene.pillars):
        # Vertical PDMS cylinders from floor to ceiling, edges softened over ~0.3 um
        # (real moulded posts are not pixel-sharp, and a hard step would alias).
        yy = ((np.arange(gh) + 0.5 - origin_px[0]) * px)[:, None]
        xx = ((np.arange(gw) + 0.5 - origin_px[1]) * px)[None, :]
        r = p.pillar_diameter_um / 2
        inside = np.zeros(grid_shape, np.float32)
        for x, y in scene.pillars:
            d = np.hypot(xx - x, yy - y)
            inside = np.maximum(inside, (0.5 * (1 - np.tanh((d - r) / 0.15))).astype(np.float32))
        chamber = _chord_in_slabs(p.chamber_height_um / 2, np.array([[p.chamber_height_um / 2]]),
                                  edges_up)[:, 0, 0]
        opd += (PDMS_DN * chamber.astype(np.float32))[:, None, None] * inside[None]

    # Light meets the top slab first.
    return opd[::-1].copy(), absorb[::-1].copy(), edges_up[::-1].copy()
