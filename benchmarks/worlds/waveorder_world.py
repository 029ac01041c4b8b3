"""An independent bright-field test world: waveorder's transfer functions, own phantoms, own camera.

Usage::

    python benchmarks/worlds/waveorder_world.py OUT --stacks N --seed S [--size PX] [--overwrite]

writes ``N`` z-stacks (31 slices 1 um apart, 0.24 um/px, uint16) with ``annotations.csv``
(readable by ``zfocus train`` / ``zfocus eval``) and ``world.json`` describing the world.

Nothing here comes from the project's simulator (``napari_zfocus.simulation``); only the
file format is the project's (``napari_zfocus.data``). The optics are waveorder's partially
coherent weak-object transfer functions (absorption and phase) of a thin layer at a given
defocus (``waveorder.models.isotropic_thin_3d``: disc condenser of NA 0.25-0.55 drawn per
stack, disc detection pupil of NA 1.3, water-like medium n = 1.33, 0.55 um light). The thick
phantom (``phantoms.py``) is cut into 0.5 um slabs and the slab images are summed (first
Born approximation: the scattered fields of the slabs add); beyond 5 um of defocus a slab
between two whole z-steps is shared between them (< 3 % of the image's contrast, tested).
The summed log-intensity ``dI`` is exponentiated, ``I = I0 exp(dI)`` (a Rytov-type form that
equals waveorder's linear ``I0 (1 + dI)`` for weak objects and keeps intensities positive for
the ~2 rad phase of a whole yeast cell). The field is periodic, like the FFT optics. The
camera adds uneven illumination, lamp flicker, shot and read noise, gain and offset.

Sign convention (the project's): slice ``i`` lies at ``z = (i - focus_index) * z_step``,
``z > 0`` puts the sample ABOVE the focal plane; light comes from the condenser above, so the
focal plane is then ``z`` downstream of the sample, which is waveorder's defocus ``+z``
(its propagation kernel is ``exp(+2 pi i z k_z)`` and a positive phase is a retardation).
A cell, denser than the medium, is a weak converging lens: its centre is bright at
``z > 0`` and dark at ``z < 0`` (checked in tests/benchmarks/test_waveorder_world.py).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import torch
from waveorder.models import isotropic_thin_3d

from napari_zfocus._atomic import atomic_write_text, write_errors_named
from napari_zfocus.data import Annotation, write_annotations, write_stack
from napari_zfocus.errors import ZFocusError, describe
from napari_zfocus.validation import arg_type, check_number

try:
    from .phantoms import CELLS_PER_FIELD, CHAMBER_UM, Scene, draw_scene, rasterize
except ImportError:  # run as a script: its folder is sys.path[0]
    from phantoms import (  # type: ignore[no-redef]
        CELLS_PER_FIELD,
        CHAMBER_UM,
        Scene,
        draw_scene,
        rasterize,
    )

WAVELENGTH_UM = 0.55
#: Detection NA 1.3 into a water-like medium (n = 1.33): legal, NA < n.
NA_DETECTION = 1.3
N_MEDIA = 1.33
PIXEL_UM = 0.24
Z_STEP_UM = 1.0
N_SLICES = 31
#: Slab thickness of the phantom (um); Z_STEP_UM is a multiple of it.
SLAB_UM = 0.5
#: Annotated focus slice range for 31 slices (scaled for shorter stacks).
FOCUS_RANGE = (10, 20)
CONDENSER_NA = (0.25, 0.55)
PHOTONS = (500.0, 10000.0)
OFFSET_ADU = 100.0
#: Beyond this defocus (um) slabs are imaged from whole-z-step transfer functions.
FAR_UM = 5.0
#: Defocus distances per waveorder call (bounds its (D, 2Y, 2X) complex intermediates).
TF_CHUNK = 12


@dataclass
class WorldStack:
    """One simulated stack: uint16 ``(Z, Y, X)`` data, its focus slice and what was drawn."""

    data: np.ndarray
    focus_index: int
    drawn: dict[str, float]
    #: The cells (for masks in checks of the world).
    scene: Scene


def transfer_functions(shape: tuple[int, int], condenser_na: float, distances_um: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """waveorder's absorption and phase transfer functions at defocus ``distances_um`` (>= 0).

    Returned real, float32, in ``rfft2`` layout ``(D, Y, X // 2 + 1)``: with an on-axis disc
    condenser they are real and radially symmetric (even in frequency).
    """
    absorption, phase = [], []
    half = shape[1] // 2 + 1
    with torch.no_grad():
        for start in range(0, len(distances_um), TF_CHUNK):
            chunk = torch.as_tensor(distances_um[start:start + TF_CHUNK], dtype=torch.float32)
            a, p = isotropic_thin_3d.calculate_transfer_function(
                shape, PIXEL_UM, chunk, WAVELENGTH_UM, N_MEDIA, condenser_na, NA_DETECTION)
            absorption.append(a.real[..., :half].numpy())
            phase.append(p.real[..., :half].numpy())
    return np.concatenate(absorption), np.concatenate(phase)


def log_intensity(phase: np.ndarray, absorb: np.ndarray, steps: np.ndarray,
                  condenser_na: float, far_um: float = FAR_UM) -> np.ndarray:
    """Summed weak-object image ``dI`` of the slabs at every plane, ``(Z, Y, X)`` float32.

    ``steps[i, l]`` is the defocus of slab ``l`` at plane ``i`` in slab units (the focal plane
    ``steps * SLAB_UM`` downstream of the slab). Beyond ``far_um`` a slab between two whole
    z-steps of defocus is shared linearly between them (fewer transfer functions to compute:
    far from focus only low lateral frequencies remain, and these vary slowly with z). The
    transfer functions are computed at ``|defocus|`` only: the phase one is odd in defocus,
    the absorption one even (exact for a centred disc condenser; checked in the tests).
    ``absorb`` is an amplitude attenuation, hence the minus sign (waveorder's absorption
    input is an amplitude gain).
    """
    shape = phase.shape[1:]
    per_step = round(Z_STEP_UM / SLAB_UM)
    off = steps % per_step
    split = (np.abs(steps) * SLAB_UM > far_um) & (off != 0)
    lo = np.where(split, steps - off, steps)
    hi = np.where(split, steps - off + per_step, steps)
    w_hi = np.where(split, off / per_step, 0.5).astype(np.float32)
    needed, index = np.unique(np.abs(np.stack([lo, hi])), return_inverse=True)
    index = index.reshape(2, *steps.shape)
    h_abs, h_phase = transfer_functions(shape, condenser_na, needed * SLAB_UM)
    ph_hat = scipy.fft.rfft2(phase)
    ab_hat = scipy.fft.rfft2(absorb)
    out = np.empty((steps.shape[0], *shape), np.float32)
    for i in range(steps.shape[0]):
        spectrum = np.zeros(ph_hat.shape[1:], ph_hat.dtype)
        for rows, sign, weight in ((index[0, i], np.sign(lo[i]), 1 - w_hi[i]),
                                   (index[1, i], np.sign(hi[i]), w_hi[i])):
            w = weight[:, None, None]
            spectrum += (h_phase[rows] * (sign[:, None, None] * w) * ph_hat
                         - h_abs[rows] * w * ab_hat).sum(0)
        out[i] = scipy.fft.irfft2(spectrum, s=shape)
    return out


def illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Uneven illumination: radial fall-off of 3-20 % at the corners and a tilt up to 5 %."""
    yy, xx = (np.linspace(-1, 1, n, dtype=np.float32) for n in shape)
    r2 = (yy[:, None] ** 2 + xx[None, :] ** 2) / 2
    theta = rng.uniform(0, 2 * math.pi)
    tilt = rng.uniform(0, 0.05) * (xx[None, :] * math.cos(theta) + yy[:, None] * math.sin(theta))
    return (1 - rng.uniform(0.03, 0.2) * r2) * (1 + tilt)


def camera(rng: np.random.Generator, photons: np.ndarray) -> np.ndarray:
    """Shot noise, Gaussian read noise (1-2.5 e-), gain 0.4-1.2 ADU/e-, offset, uint16."""
    electrons = rng.poisson(photons).astype(np.float32)
    electrons += rng.normal(0.0, rng.uniform(1.0, 2.5), size=photons.shape).astype(np.float32)
    adu = OFFSET_ADU + rng.uniform(0.4, 1.2) * electrons
    return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)


def focus_range(n_slices: int) -> tuple[int, int]:
    """The annotated-focus range: slices 10..20 of 31, in proportion for other lengths."""
    scale = (n_slices - 1) / (N_SLICES - 1)
    return round(FOCUS_RANGE[0] * scale), round(FOCUS_RANGE[1] * scale)


def simulate_stack(seed: np.random.SeedSequence | int, size: int = 320,
                   n_slices: int = N_SLICES,
                   condenser_na: tuple[float, float] = CONDENSER_NA) -> WorldStack:
    """Simulate one ``(n_slices, size, size)`` uint16 stack from ``seed``.

    ``condenser_na`` is the range the condenser aperture is drawn from; ``(a, a)`` is one
    microscope's fixed Koehler setting. The draw is made either way, so a seed gives the same
    scene, camera and focus whatever the range.
    """
    rng = np.random.default_rng(seed)
    scene = draw_scene(rng, size * PIXEL_UM)
    focus = int(rng.integers(focus_range(n_slices)[0], focus_range(n_slices)[1] + 1))
    # The floor cells' mid-plane lies between slices; a person annotates the nearest one.
    sub = float(rng.uniform(-0.5, 0.5))
    condenser_na = float(rng.uniform(*condenser_na))
    photons = float(math.exp(rng.uniform(*np.log(PHOTONS))))
    slab_steps, phase, absorb = _slabs(scene, size, sub)
    plane_steps = (np.arange(n_slices) - focus) * round(Z_STEP_UM / SLAB_UM)
    d_intensity = log_intensity(phase, absorb, plane_steps[:, None] + slab_steps[None, :],
                                condenser_na)
    flicker = 1 + rng.normal(0, 0.003, size=(n_slices, 1, 1))
    expected = photons * illumination(rng, (size, size)) * flicker * np.exp(d_intensity)
    drawn = {"condenser_na": condenser_na, "photons": photons, "focus_true": focus + sub,
             "n_cells": float(scene.n_cells),
             "ceiling_fraction": scene.n_ceiling / max(1, len(scene.floor_heights)
                                                       + scene.n_ceiling)}
    return WorldStack(camera(rng, expected), focus, drawn, scene)


def _slabs(scene: Scene, size: int, sub: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chamber cut into slabs placed so every slab-to-plane distance is whole slabs.

    The floor cells' mid-plane (height ``m``) is in focus at the fractional slice
    ``focus + sub``: plane ``i`` is at defocus ``(i - focus - sub) * z_step`` for it, so a
    slab at height ``m + sub * z_step + k * SLAB_UM`` is at defocus
    ``(i - focus) * z_step + k * SLAB_UM`` from plane ``i``. Returns ``k`` per non-empty
    slab and the slabs' phase and attenuation.
    """
    base = scene.focus_height() + sub * Z_STEP_UM
    k = np.arange(math.floor(-base / SLAB_UM - 0.5) + 1,
                  math.ceil((CHAMBER_UM - base) / SLAB_UM + 0.5))
    phase, absorb = rasterize(scene, (size, size), PIXEL_UM, base + k * SLAB_UM, SLAB_UM,
                              WAVELENGTH_UM)
    used = (phase != 0).any(axis=(1, 2)) | (absorb != 0).any(axis=(1, 2))
    return k[used], phase[used], absorb[used]


def write_world_dataset(out: str | Path, n_stacks: int, seed: int = 0, size: int = 320, *,
                        condenser_na: tuple[float, float] = CONDENSER_NA,
                        overwrite: bool = False,
                        progress: Callable[[int, int], None] | None = None) -> Path:
    """Write ``n_stacks`` stacks, ``annotations.csv`` and ``world.json`` into ``out``.

    Stack ``i`` is a pure function of ``(seed, i, size)`` (its seed is spawned from a
    ``SeedSequence``), whatever ``n_stacks``. ``annotations.csv`` is rewritten after every
    stack, so an interrupted run leaves a valid dataset of the finished ones.

    Raises
    ------
    ZFocusError
        ``out`` is a file, or a non-empty folder and ``overwrite`` is false; a write failed.
    """
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ZFocusError(describe(root, "exists and is not a folder"))
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise ZFocusError(describe(root, "is not empty (--overwrite writes into it)"))
    root.mkdir(parents=True, exist_ok=True)
    with write_errors_named(root / "world.json", "world description"):
        atomic_write_text(root / "world.json", json.dumps(world_description(
            n_stacks, seed, size, condenser_na), indent=2) + "\n")
    width = max(3, len(str(n_stacks - 1)))
    annotations: list[Annotation] = []
    for i in range(n_stacks):
        stack = simulate_stack(np.random.SeedSequence(seed, spawn_key=(i,)), size,
                               condenser_na=condenser_na)
        name = f"stack_{i:0{width}d}.tif"
        with write_errors_named(root / name, "stack"):
            write_stack(root / name, stack.data, z_step_um=Z_STEP_UM, pixel_size_um=PIXEL_UM)
        d = stack.drawn
        annotations.append(Annotation(name, stack.focus_index, Z_STEP_UM, PIXEL_UM, extra={
            "n_cells": f"{d['n_cells']:.0f}", "ceiling_fraction": f"{d['ceiling_fraction']:.3f}",
            "condenser_na": f"{d['condenser_na']:.3f}", "photons": f"{d['photons']:.0f}",
            "focus_true": f"{d['focus_true']:.3f}"}))
        with write_errors_named(root / "annotations.csv", "annotations"):
            write_annotations(root, annotations)
        if progress is not None:
            progress(i + 1, n_stacks)
    return root / "annotations.csv"


def world_description(n_stacks: int, seed: int, size: int,
                      condenser_na: tuple[float, float] = CONDENSER_NA) -> dict[str, object]:
    """What ``world.json`` says: the fixed optics, the drawn ranges and the versions."""
    return {
        "name": "waveorder",
        "waveorder_version": importlib.metadata.version("waveorder"),
        "forward_model": "waveorder.models.isotropic_thin_3d partially coherent WOTF per "
                         f"{SLAB_UM} um slab, summed (first Born), I = I0 exp(dI)",
        "n_stacks": n_stacks, "seed": seed, "size_px": size, "n_slices": N_SLICES,
        "pixel_size_um": PIXEL_UM, "z_step_um": Z_STEP_UM, "slab_um": SLAB_UM,
        "wavelength_um": WAVELENGTH_UM, "na_detection": NA_DETECTION, "n_media": N_MEDIA,
        "chamber_um": CHAMBER_UM,
        "ranges": {"condenser_na": list(condenser_na), "photons_per_px": list(PHOTONS),
                   "focus_index": list(FOCUS_RANGE), "cells_per_320px_field":
                   list(CELLS_PER_FIELD), "index_excess": [0.02, 0.06]},
        "camera": {"offset_adu": OFFSET_ADU, "gain_adu_per_e": [0.4, 1.2],
                   "read_noise_e": [1.0, 2.5], "dtype": "uint16"},
        "convention": "slice i at z = (i - focus_index) * z_step; z > 0: sample above the "
                      "focal plane; cell centres bright at z > 0, dark at z < 0",
    }


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code (2 on a user error)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="dataset folder to write")
    parser.add_argument("--stacks", type=arg_type(check_number, integer=True, lo=1),
                        required=True)
    parser.add_argument("--seed", type=arg_type(check_number, integer=True, lo=0), default=0)
    parser.add_argument("--size", type=arg_type(check_number, integer=True, lo=32, hi=2048),
                        default=320, help="stack width and height in pixels (default 320)")
    parser.add_argument("--condenser-na", type=arg_type(check_number, lo=0.05, hi=1.0),
                        nargs="+", metavar="NA", default=list(CONDENSER_NA),
                        help="condenser aperture: one value (a microscope's fixed Koehler "
                             "setting) or a range LO HI drawn per stack (default "
                             f"{CONDENSER_NA[0]} {CONDENSER_NA[1]})")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty folder")
    args = parser.parse_args(argv)
    if len(args.condenser_na) > 2 or args.condenser_na[0] > args.condenser_na[-1]:
        parser.error("--condenser-na takes one value or LO HI with LO <= HI")
    try:
        csv_path = write_world_dataset(
            args.out, args.stacks, args.seed, args.size,
            condenser_na=(args.condenser_na[0], args.condenser_na[-1]), overwrite=args.overwrite,
            progress=lambda done, total: print(f"stack {done}/{total}", file=sys.stderr))
    except ZFocusError as exc:
        print(f"waveorder_world: error: {exc}", file=sys.stderr)
        return 2
    print(csv_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
