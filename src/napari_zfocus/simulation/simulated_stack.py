"""Whole simulated z-stacks: :class:`SimulationParams` and :func:`simulate_stack`.

Knobs that vary between stacks (so that a CNN trained on them generalises) accept either
a single value (fixed) or a ``(low, high)`` range drawn uniformly per stack; cell counts are
drawn log-uniformly (as many sparse fields as crowded ones).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from napari_zfocus.errors import ZFocusError
from napari_zfocus.simulation.camera import CameraParams, apply_camera
from napari_zfocus.simulation.optics import OpticsParams
from napari_zfocus.simulation.render import OpticalRenderer
from napari_zfocus.simulation.sample import SampleParams, Scene

#: A fixed value or a (low, high) range drawn per stack.
Range = float | tuple[float, float]

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
    sample, optics, camera
        Remaining settings; their fields named above are overridden per stack.
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
                     "read_noise_e", "vignetting", "grow_hours"):
            lo, hi = _bounds(getattr(self, name))
            if lo > hi or lo < 0:
                raise ZFocusError(f"simulation: bad {name} {getattr(self, name)!r}")
        if _bounds(self.ceiling_fraction)[1] > 1:
            raise ZFocusError("simulation: ceiling_fraction must be <= 1")
        if _bounds(self.condenser_na)[1] >= self.optics.na:
            raise ZFocusError(
                f"simulation: condenser_na must stay below the objective NA {self.optics.na}"
            )

    def focus_range(self) -> tuple[int, int]:
        """Inclusive range of in-focus slice indices drawn when ``focus_index`` is None."""
        jitter = self.n_slices // 6 if self.focus_jitter is None else self.focus_jitter
        mid = (self.n_slices - 1) // 2
        return max(0, mid - jitter), min(self.n_slices - 1, mid + jitter)


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
        photons, read_noise_e, vignetting, tilt_x, tilt_y).
    scene
        The sample, for inspection (cell masks, heights...).
    """

    data: np.ndarray
    focus_index: int
    z_um: np.ndarray
    params: SimulationParams
    drawn: dict[str, Any]
    scene: Scene


def _bounds(value: Range) -> tuple[float, float]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ZFocusError(f"simulation: a range needs 2 values, got {value!r}")
        return float(value[0]), float(value[1])
    return float(value), float(value)


def _draw(value: Range, rng: np.random.Generator, log: bool = False) -> float:
    lo, hi = _bounds(value)
    if lo == hi:
        return lo
    if log and lo > 0:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(rng.uniform(lo, hi))


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
    # Independent streams: changing e.g. the camera does not change the sample.
    rng_knobs, rng_sample, rng_optics, rng_camera = (np.random.default_rng(s)
                                                     for s in ss.spawn(4))
    lo, hi = params.focus_range()
    focus = params.focus_index if params.focus_index is not None else int(
        rng_knobs.integers(lo, hi + 1))
    drawn: dict[str, Any] = {
        "n_cells": int(round(_draw(params.n_cells, rng_knobs, log=True))),
        "ceiling_fraction": _draw(params.ceiling_fraction, rng_knobs),
        "condenser_na": _draw(params.condenser_na, rng_knobs),
        "photons": _draw(params.photons, rng_knobs, log=True),
        "read_noise_e": _draw(params.read_noise_e, rng_knobs),
        "vignetting": _draw(params.vignetting, rng_knobs),
    }
    vig_centre = tuple(rng_knobs.uniform(0.35, 0.65, 2))
    sample = dataclasses.replace(params.sample, n_cells=drawn["n_cells"],
                                 ceiling_fraction=drawn["ceiling_fraction"],
                                 max_tilt=params.max_tilt)
    optics = dataclasses.replace(params.optics, condenser_na=drawn["condenser_na"])
    camera = dataclasses.replace(params.camera, photons=drawn["photons"],
                                 read_noise_e=drawn["read_noise_e"],
                                 vignetting=drawn["vignetting"], vignetting_centre=vig_centre)
    shape = cast("tuple[int, int]", tuple(params.shape))
    scene = Scene.random(sample, rng_sample, shape, params.pixel_size_um,
                         margin_um=optics.margin_um)
    if _bounds(params.grow_hours)[1] > 0:
        # Drawn last, and only when asked for: stacks without growth stay bit-identical.
        drawn["grow_hours"] = _draw(params.grow_hours, rng_knobs)
        grow_scene(scene, drawn["grow_hours"], rng_sample)
    drawn["tilt_x"], drawn["tilt_y"] = scene.tilt
    z_um = (np.arange(params.n_slices) - focus) * params.z_step_um
    intensity = OpticalRenderer(optics, rng_optics).render(scene, z_um)
    data = apply_camera(intensity, camera, rng_camera)
    return SimulatedStack(data=data, focus_index=focus, z_um=z_um, params=params,
                          drawn=drawn, scene=scene)


#: Time step of :func:`grow_scene`, hours: the live simulator's scene-update interval
#: (``SimulatedMicroscopeSettings.rerender_every_s``; a test keeps the two equal).
GROW_STEP_H = 1.0 / 6.0


def grow_scene(scene: Scene, hours: float, rng: np.random.Generator) -> None:
    """Grow ``scene`` in place for ``hours`` in small steps (as the live simulator does)."""
    n = int(np.ceil(hours / GROW_STEP_H - 1e-9))
    for _ in range(n):
        scene.grow(hours / n, rng)
