"""Whole simulated z-stacks: :class:`SimulationParams` and :func:`simulate_stack`.

Knobs that vary between stacks (so that a CNN trained on them generalises) accept either
a single value (fixed) or a ``(low, high)`` range drawn uniformly per stack; cell counts are
drawn log-uniformly (as many sparse fields as crowded ones). :data:`PRESETS` names ready
settings: ``"default"`` (the yeast chamber the demo model was trained on) and ``"broad"``
(:meth:`SimulationParams.broad`: wider than any one microscope shows, for models meant to
work on what labs bring).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from napari_zfocus.errors import ZFocusError
from napari_zfocus.simulation.camera import CameraParams, apply_camera
from napari_zfocus.simulation.knobs import FEATURES, Range, bounds, draw, draw_sample
from napari_zfocus.simulation.optics import OpticsParams
from napari_zfocus.simulation.render import OpticalRenderer
from napari_zfocus.simulation.sample import SampleParams, Scene

__all__ = ["PRESETS", "Range", "SimulatedStack", "SimulationParams", "simulate_stack"]

SeedLike = int | np.random.SeedSequence


@dataclass
class SimulationParams:
    """Everything that defines a simulated stack (lengths in um).

    Parameters
    ----------
    pixel_size_um, z_step_um, n_slices, shape
        Sampling: 0.24 um/px (the paper's 4x-downsampled input), 1 um steps, 31 slices,
        320 x 320 px (76.8 um).
    focus_index
        In-focus slice; ``None`` draws it uniformly within ``focus_jitter`` slices of the
        middle (10..20 for 31 slices) so that a model cannot learn the slice index.
    focus_jitter
        Half-width of that range in slices; ``None`` = ``n_slices // 6``.
    n_cells
        Cells in the field, value or range (log-uniform): ~15 to hundreds.
    ceiling_fraction
        Fraction of cells on the chamber ceiling, value or range.
    condenser_na
        Condenser aperture, value or range.
    photons
        Brightness (electrons per pixel of background), value or range.
    read_noise_e
        Camera read noise, value or range.
    vignetting
        Corner brightness loss, value or range.
    max_tilt
        Largest sample-plane slope (um per um).
    grow_hours
        Let the population grow (:meth:`Scene.grow`: budding, crowding, flow) for this many
        hours, value or range, before imaging: stacks that look like a time-lapse hours in
        (dense colonies of budding cells) rather than freshly seeded cells. 0 = no growth.
    chamber_height_um
        Floor-to-ceiling height, value or range; raised where needed to the tallest cell
        of the stack (a chamber never squashes its cells). ``None``: ``sample``'s.
    cell_diameter_um, cell_dn, cell_absorption_per_um
        The stack's TYPICAL cell diameter, index excess and absorption per um (value or
        range; absorption log-uniform); its cells vary +-20 % around it, inside the range.
        ``None``: ``sample``'s per-cell ranges, the same for every stack.
    rod_fraction
        Fraction of the cells that are rods (:mod:`.rods`), value or range. 0: no rods.
    debris_per_100um2
        Debris particles per 100 um^2 (:mod:`.debris`), value or range. 0: no debris.
    feature_probability
        Probability that a stack has a feature at all: ``"rods"``, ``"debris"``,
        ``"growth"`` (otherwise its ``rod_fraction`` / ``debris_per_100um2`` /
        ``grow_hours`` is 0) and ``"pillars"``; a feature not named is always present.
    sample, optics, camera
        Remaining settings; their fields named above are overridden per stack.

    Every knob added after the first release (chamber height through feature probability)
    draws from its own random stream, so at their defaults a stack is bit-identical to
    one simulated before they existed.
    """

    pixel_size_um: float = 0.24
    z_step_um: float = 1.0
    n_slices: int = 31
    shape: tuple[int, int] = (320, 320)
    focus_index: int | None = None
    focus_jitter: int | None = None
    n_cells: Range = (15.0, 300.0)
    ceiling_fraction: Range = (0.0, 0.3)
    condenser_na: Range = (0.3, 0.45)
    photons: Range = (1000.0, 8000.0)
    read_noise_e: Range = (1.5, 6.0)
    vignetting: Range = (0.05, 0.3)
    max_tilt: float = 0.004
    grow_hours: Range = 0.0
    chamber_height_um: Range | None = None
    cell_diameter_um: Range | None = None
    cell_dn: Range | None = None
    cell_absorption_per_um: Range | None = None
    rod_fraction: Range = 0.0
    debris_per_100um2: Range = 0.0
    feature_probability: dict[str, float] = field(default_factory=dict)
    sample: SampleParams = field(default_factory=SampleParams)
    optics: OpticsParams = field(default_factory=OpticsParams)
    camera: CameraParams = field(default_factory=CameraParams)

    def validate(self) -> None:
        """Raise :class:`ZFocusError` for settings that cannot give a stack."""
        if self.pixel_size_um <= 0 or self.z_step_um <= 0:
            raise ZFocusError("simulation: pixel_size_um and z_step_um must be > 0")
        if self.n_slices < 1:
            raise ZFocusError(f"simulation: n_slices must be >= 1, got {self.n_slices}")
        if len(self.shape) != 2 or min(self.shape) < 16:
            raise ZFocusError(f"simulation: shape must be 2 sizes >= 16 px, got {self.shape}")
        if self.focus_index is not None and not 0 <= self.focus_index < self.n_slices:
            raise ZFocusError(
                f"simulation: focus_index {self.focus_index} outside 0..{self.n_slices - 1}"
            )
        for name in ("n_cells", "ceiling_fraction", "condenser_na", "photons",
                     "read_noise_e", "vignetting", "grow_hours", "chamber_height_um",
                     "cell_diameter_um", "cell_dn", "cell_absorption_per_um",
                     "rod_fraction", "debris_per_100um2"):
            value = getattr(self, name)
            lo, hi = bounds(0.0 if value is None else value)
            if lo > hi or lo < 0:
                raise ZFocusError(f"simulation: bad {name} {value!r}")
        for name in ("ceiling_fraction", "rod_fraction"):
            if bounds(getattr(self, name))[1] > 1:
                raise ZFocusError(f"simulation: {name} must be <= 1")
        if bounds(self.condenser_na)[1] >= self.optics.na:
            raise ZFocusError(
                f"simulation: condenser_na must stay below the objective NA {self.optics.na}"
            )
        for name, p in self.feature_probability.items():
            if name not in FEATURES or not 0.0 <= p <= 1.0:
                raise ZFocusError(f"simulation: feature_probability needs features of "
                                  f"{', '.join(FEATURES)} with probabilities in [0, 1], "
                                  f"got {name!r}: {p!r}")

    def focus_range(self) -> tuple[int, int]:
        """Inclusive range of in-focus slice indices drawn when ``focus_index`` is None."""
        jitter = self.n_slices // 6 if self.focus_jitter is None else self.focus_jitter
        mid = (self.n_slices - 1) // 2
        return max(0, mid - jitter), min(self.n_slices - 1, mid + jitter)

    @classmethod
    def broad(cls, **changes: Any) -> SimulationParams:
        """The ``"broad"`` preset: samples and microscopes wider than any one lab shows.

        Drawn per stack (``changes`` replace any field, e.g. ``shape=(96, 96)``):

        ============================  ==========================================
        condenser NA                  0.2 .. 0.6 (objective NA 1.3 stays above)
        cells in the field            5 .. 400, log-uniform
        typical cell diameter         2.5 .. 8 um (cells +-20 %, inside 2.5 .. 8)
        typical cell index excess     0.015 .. 0.08 (n ~ 1.35 .. 1.41)
        typical cell absorption       0.002 .. 0.05 per um, log-uniform
        ceiling cells                 0 .. 50 %
        chamber height                4 .. 12 um, at least the tallest cell
        rods                          on 40 % of stacks, 0 .. 50 % of the cells
                                      (4 .. 14 um long, 2 .. 4 um wide)
        colony growth                 on 40 % of stacks, 0 .. 24 h
        debris                        on 60 % of stacks, 0 .. 1 per 100 um^2
                                      (0.3 .. 2 um, absorbing or high-index)
        PDMS pillars                  on 60 % of stacks
        sample tilt                   up to 0.01 um/um (0.8 um over a 77 um field)
        condenser source points       16, or 130 x NA^2 where more (47 at NA 0.6)
        photons (background e-/px)    200 .. 20000, log-uniform
        read noise                    1 .. 12 e- rms
        vignetting                    0 .. 50 % in the corners
        ============================  ==========================================

        The focus definition is unchanged: z = 0 is the mid-plane of the floor cells.
        """
        broad = cls(
            n_cells=(5.0, 400.0), ceiling_fraction=(0.0, 0.5), condenser_na=(0.2, 0.6),
            photons=(200.0, 20000.0), read_noise_e=(1.0, 12.0), vignetting=(0.0, 0.5),
            max_tilt=0.01, grow_hours=(0.0, 24.0), chamber_height_um=(4.0, 12.0),
            cell_diameter_um=(2.5, 8.0), cell_dn=(0.015, 0.08),
            cell_absorption_per_um=(0.002, 0.05), rod_fraction=(0.0, 0.5),
            debris_per_100um2=(0.0, 1.0),
            feature_probability={"rods": 0.4, "growth": 0.4, "debris": 0.6, "pillars": 0.6},
            # Wide condensers need more source points for a smooth defocus blur.
            optics=OpticsParams(source_density=130.0),
        )
        return dataclasses.replace(broad, **changes)


@dataclass
class SimulatedStack:
    """A simulated z-stack with its ground truth.

    Attributes
    ----------
    data
        uint16 ``(Z, Y, X)`` camera images.
    focus_index
        The TRUE in-focus slice (focal plane through the floor-cell layer).
    z_um
        Defocus of each slice, ``(i - focus_index) * z_step_um``.
    params
        The parameters it was drawn from.
    drawn
        The per-stack values actually used (n_cells, ceiling_fraction, condenser_na,
        photons, read_noise_e, vignetting, tilt_x, tilt_y; and those of the knobs in
        use of grow_hours, chamber_height_um, cell_diameter_um, cell_dn,
        cell_absorption_per_um, rod_fraction, debris_per_100um2, pillars).
    scene
        The sample, for inspection (cell masks, heights...).
    """

    data: np.ndarray
    focus_index: int
    z_um: np.ndarray
    params: SimulationParams
    drawn: dict[str, Any]
    scene: Scene


def simulate_stack(params: SimulationParams | None = None, seed: SeedLike = 0) -> SimulatedStack:
    """Simulate one bright-field z-stack of yeast in the chamber.

    Parameters
    ----------
    params
        Settings (default :class:`SimulationParams`).
    seed
        Integer or :class:`numpy.random.SeedSequence`; the same seed gives an identical
        stack.

    Returns
    -------
    SimulatedStack
    """
    params = params or SimulationParams()
    params.validate()
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    # Independent streams: changing e.g. the camera does not change the sample. The fifth
    # (features) came later; spawning 5 leaves the first four children what they were.
    rng_knobs, rng_sample, rng_optics, rng_camera, rng_features = (
        np.random.default_rng(s) for s in ss.spawn(5))
    lo, hi = params.focus_range()
    focus = params.focus_index if params.focus_index is not None else int(
        rng_knobs.integers(lo, hi + 1))
    drawn: dict[str, Any] = {
        "n_cells": int(round(draw(params.n_cells, rng_knobs, log=True))),
        "ceiling_fraction": draw(params.ceiling_fraction, rng_knobs),
        "condenser_na": draw(params.condenser_na, rng_knobs),
        "photons": draw(params.photons, rng_knobs, log=True),
        "read_noise_e": draw(params.read_noise_e, rng_knobs),
        "vignetting": draw(params.vignetting, rng_knobs),
    }
    vig_centre = tuple(rng_knobs.uniform(0.35, 0.65, 2))
    sample_knobs, present = draw_sample(params, rng_features, drawn)
    sample = dataclasses.replace(params.sample, n_cells=drawn["n_cells"],
                                 ceiling_fraction=drawn["ceiling_fraction"],
                                 max_tilt=params.max_tilt, **sample_knobs)
    optics = dataclasses.replace(params.optics, condenser_na=drawn["condenser_na"])
    camera = dataclasses.replace(params.camera, photons=drawn["photons"],
                                 read_noise_e=drawn["read_noise_e"],
                                 vignetting=drawn["vignetting"], vignetting_centre=vig_centre)
    shape = cast("tuple[int, int]", tuple(params.shape))
    scene = Scene.random(sample, rng_sample, shape, params.pixel_size_um,
                         margin_um=optics.margin_um)
    if bounds(params.grow_hours)[1] > 0:
        # Drawn last, and only when asked for: stacks without growth stay bit-identical.
        drawn["grow_hours"] = draw(params.grow_hours, rng_knobs) if present.get(
            "growth", True) else 0.0
        grow_scene(scene, drawn["grow_hours"], rng_sample)
    drawn["tilt_x"], drawn["tilt_y"] = scene.tilt
    z_um = (np.arange(params.n_slices) - focus) * params.z_step_um
    intensity = OpticalRenderer(optics, rng_optics).render(scene, z_um)
    data = apply_camera(intensity, camera, rng_camera)
    return SimulatedStack(data=data, focus_index=focus, z_um=z_um, params=params,
                          drawn=drawn, scene=scene)


#: Named settings: ``zfocus simulate --preset NAME`` (each builds fresh parameters).
PRESETS: dict[str, Callable[[], SimulationParams]] = {
    "default": SimulationParams,
    "broad": SimulationParams.broad,
}


#: Time step of :func:`grow_scene`, hours: the live simulator's scene-update interval
#: (``SimulatedMicroscopeSettings.rerender_every_s``; a test keeps the two equal).
GROW_STEP_H = 1.0 / 6.0


def grow_scene(scene: Scene, hours: float, rng: np.random.Generator) -> None:
    """Grow ``scene`` in place for ``hours`` in small steps (as the live simulator does)."""
    n = int(np.ceil(hours / GROW_STEP_H - 1e-9))
    for _ in range(n):
        scene.grow(hours / n, rng)
