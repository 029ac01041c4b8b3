"""The sample: budding yeast (and optionally rods and debris) in a microfluidic chamber.

A :class:`Scene` is one field of view of the chamber. It holds

* cells as a structure of arrays (:class:`Cells`): centre (x, y) in um inside the field,
  centre height above the chamber floor, ellipsoid semi-axes, orientation, refractive-index
  excess, absorption, an optional vacuole and an optional bud;
  optionally some of them rods (spherocylinders, :mod:`.rods`; ``SampleParams.rod_fraction``);
* PDMS pillars (10 um cylinders on a 50 um grid) that span the whole chamber height;
* optional debris (:mod:`.debris`; ``SampleParams.debris_per_100um2``): small absorbing or
  high-index particles on the floor, on the ceiling and suspended in between;
* a small tilt of the sample plane (the chamber is never perfectly level);
* ``focus_height_um``: the height of the floor-cell layer (median centre height of the cells
  on the floor). Defocus z = 0 means the focal plane lies at this height.

Scenes are created with :meth:`Scene.random` and evolved with :meth:`Scene.grow` (budding,
division, crowding, flow drift, clusters floating in and out), which is what the simulated
microscope uses for 24 h time-lapses. :func:`optical_layers` turns a scene into the per-layer
optical path (phase) and absorption maps that :mod:`.optics` propagates through.

This module holds the chamber and the scene; the cells live in :mod:`.cells`, their
placement and growth in :mod:`.colony`, the rasterisation in :mod:`.slabs`.

Coordinates: x to the right, y down (image rows), heights in um above the chamber floor.
Light travels from the condenser above the chamber down to the inverted objective.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from napari_zfocus.errors import ZFocusError
from napari_zfocus.simulation.cells import Cells, child_rng
from napari_zfocus.simulation.colony import grow_population, place_cells
from napari_zfocus.simulation.debris import Debris, random_debris
from napari_zfocus.simulation.slabs import PDMS_DN, optical_layers

# Cells, optical_layers and PDMS_DN moved to their own modules; importable here as before.
__all__ = ["PDMS_DN", "Cells", "SampleParams", "Scene", "optical_layers"]


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
    rod_fraction
        Fraction of the cells that are rods (spherocylinders lying flat; fission yeast,
        large bacteria). 0 (default): none, and the scene is exactly what it was before
        rods existed.
    rod_length_um, rod_width_um
        Ranges of rod length (cap to cap) and width, uniformly drawn.
    debris_per_100um2
        Mean number of debris particles per 100 um^2 of field (0: none, the default).
    debris_diameter_um
        Range of particle diameters (log-uniformly drawn).
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
    rod_fraction: float = 0.0
    rod_length_um: tuple[float, float] = (4.0, 14.0)
    rod_width_um: tuple[float, float] = (2.0, 4.0)
    debris_per_100um2: float = 0.0
    debris_diameter_um: tuple[float, float] = (0.3, 2.0)

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
        self._validate_features()

    def _validate_features(self) -> None:
        """The optional rods and debris."""
        if not 0.0 <= self.rod_fraction <= 1.0:
            raise ZFocusError(f"sample: rod_fraction must be in [0, 1], got {self.rod_fraction}")
        for name in ("rod_length_um", "rod_width_um", "debris_diameter_um"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi:
                raise ZFocusError(f"sample: bad {name} range {getattr(self, name)}")
        if self.rod_fraction > 0 and self.chamber_height_um < 0.8 * self.rod_width_um[1]:
            raise ZFocusError(
                f"sample: chamber_height_um {self.chamber_height_um} is too low for "
                f"{self.rod_width_um[1]} um wide rods"
            )
        # 100 per 100 um^2 is a particle on every square micron: a solid layer of dirt.
        if not 0.0 <= self.debris_per_100um2 <= 100.0:
            raise ZFocusError(
                f"sample: debris_per_100um2 must be in [0, 100], got {self.debris_per_100um2}"
            )
        if self.debris_diameter_um[1] > self.chamber_height_um:
            raise ZFocusError(
                f"sample: debris_diameter_um {self.debris_diameter_um} does not fit the "
                f"{self.chamber_height_um} um chamber"
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
    debris
        Small particles (:mod:`.debris`); they stay put while the scene grows.
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
    debris: Debris = field(default_factory=Debris)
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
        # Focus (defocus 0) is the mid-plane of the floor-cell layer: the median centre
        # height of the cells on the floor. Rods are cells too: lying flat, their centre is
        # their radius above the floor (like an ellipsoid's is its vertical semi-axis), so a
        # field of rods focuses through their middle as yeast do. Debris are not cells and
        # are not counted: specks do not move the plane a biologist focuses on.
        floor = ~scene.cells.ceiling
        if floor.any():
            scene.focus_height_um = float(np.median(scene.cells.z[floor]))
        else:  # no floor cells: where a typical one would be
            scene.focus_height_um = float(np.mean(params.cell_diameter_um) * 0.46 + 0.15)
        if params.debris_per_100um2 > 0:
            # Own stream: a scene without debris draws what it always drew.
            scene.debris = random_debris(scene, child_rng(rng))
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
        return place_cells(self, n, rng, ceiling_fraction=ceiling_fraction, region=region)

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
        grow_population(self, dt_h, rng, doubling_h=doubling_h)

    def copy(self) -> Scene:
        """A deep copy (cells and pillars are copied)."""
        return dataclasses.replace(
            self,
            cells=self.cells.take(np.arange(len(self.cells))),
            pillars=self.pillars.copy(),
            debris=self.debris.take(np.arange(len(self.debris))),
            drift_um_per_h=self.drift_um_per_h.copy(),
        )

    def n_in_field(self) -> int:
        """Number of cell centres inside the camera field."""
        h, w = self.field_um
        c = self.cells
        return int(np.sum((c.x >= 0) & (c.x < w) & (c.y >= 0) & (c.y < h)))
