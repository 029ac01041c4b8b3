"""Typed, bounded ``argparse`` flag types shared by the ``zfocus`` sub-commands.

Every flag converts through :func:`napari_zfocus.validation.arg_type`, so a bad value is
refused while the command line is parsed (exit 2, one line naming the flag), before any
file is read or written. Each bound is a named constant below with the reason for it;
physical bounds of data (z-step, pixel size) come from :mod:`napari_zfocus.bounds` so a
flag accepts exactly what a dataset file may hold.

Imports nothing heavy: parsing ``zfocus simulate`` must not import torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from napari_zfocus.bounds import CONDENSER_NA as CONDENSER_NA_RANGE
from napari_zfocus.bounds import MAX_SEED, PIXEL_SIZE_UM, Z_STEP_UM, check_length_um
from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.device import device_name
from napari_zfocus.training.train_config import TRAIN_MAX_BATCH, TRAIN_MAX_LR
from napari_zfocus.validation import arg_type, check_interval, check_number

# --- bounds ------------------------------------------------------------------------------

#: CPU threads: at least one; 256 is more cores than any workstation has, so a larger
#: number is a typo (and torch would spawn that many threads).
MAX_THREADS = 256
#: Images per optimiser step: the training configuration's own bound.
MAX_BATCH = TRAIN_MAX_BATCH
#: Optimiser steps, validation and checkpoint intervals: 10^8 steps is years on a GPU.
MAX_STEPS = 10**8
#: Training budget: one week; a longer run is a unit mistake (hours given as minutes).
MAX_TRAIN_MINUTES = 7 * 24 * 60.0
#: Adam's learning rate: the training configuration's own bound.
MAX_LR = TRAIN_MAX_LR
#: Width of the soft labels and z-bin size, um: the same physical range as a z-step.
LABEL_SIGMA_UM = (0.0, Z_STEP_UM[1])
BIN_UM = Z_STEP_UM
#: z range of the model's bins, um from focus: 1 mm either side is far beyond any
#: defocus a bright-field image still carries (the paper used +/-20 um).
MAX_Z_RANGE_UM = 1000.0
#: Side of the model's field, um: 1 um is less than a cell; 2 mm is larger than the
#: field of view of a 4x objective on a large camera.
FIELD_UM = (1.0, 2000.0)
#: Timed and warm-up frames of ``zfocus bench``: 10^6 frames is hours of timing.
MAX_BENCH_FRAMES = 10**6
#: Live frames on hardware: 10^9 frames is 30 years at one frame per second.
MAX_LIVE_FRAMES = 10**9
#: Simulated session length: a week of simulated time (the paper's run was 24 h).
MAX_SIM_HOURS = 7 * 24.0
#: Seconds between frames: 10 ms is faster than any focus drive settles; one hour
#: between focus checks is no longer live focus keeping.
INTERVAL_S = (0.01, 3600.0)
#: Net drift of a simulated session, um (either sign): 1 mm is beyond any stage's drift.
MAX_DRIFT_UM = 1000.0
#: Noise of the oracle estimate, um: 100 um of noise is no estimate at all.
MAX_ORACLE_NOISE_UM = 100.0
#: Gain of the oracle estimate over the true defocus: a sign flip (negative) or a 10x
#: misreading is beyond any model that still reads defocus.
ORACLE_GAIN = (0.01, 10.0)
#: Simulated frame side, px: 16 is the simulator's minimum; 4096 px per side is a full
#: camera frame and already gigabytes of optics arrays.
SIM_FRAME_PX = (16, 4096)
#: Controller: dead band (um) up to 20 um (a larger band never corrects), largest single
#: move up to 100 um (a larger jump would crash an objective into the sample), gain in
#: (0, 1] (more overshoots), smoothing in [0, 1) (1 freezes the estimate), confidence 0..1.
MAX_DEAD_BAND_UM = 20.0
MAX_STEP_UM = 100.0
#: Absolute focus limits, um: 50 mm covers the full travel of any microscope focus drive.
MAX_Z_LIMIT_UM = 50_000.0
#: Simulated dataset: at most 10^5 stacks; 3..1001 slices (3: every command, ``suggest``
#: included, accepts the stacks; 1001 slices of 320 px is 200 MB per stack).
MAX_SIM_STACKS = 100_000
SIM_SLICES = (3, 1001)
#: Simulator sampling: pixels of 0.02..5 um (coarser and a 4 um cell is under one pixel,
#: so the optics model no longer resolves it) and z-steps of 0.05..20 um; both inside the
#: dataset bounds of :mod:`napari_zfocus.bounds`, so every other command reads the result.
SIM_PIXEL_SIZE_UM = (0.02, 5.0)
SIM_Z_STEP_UM = (0.05, 20.0)
#: Per-stack simulator knobs: cells per field (at least one: an empty field has no
#: focus), background electrons per pixel, colony growth in hours (the chamber is full
#: after ~24 h), condenser source points and FFT threads.
SIM_CELLS = (1.0, 10_000.0)
SIM_PHOTONS = (1.0, 1e7)
SIM_GROW_HOURS = (0.0, 72.0)
SIM_SOURCE_POINTS = (1, 1024)
#: Condenser aperture: 0.01 (nearly coherent) up to 1.5, the largest NA of an immersion
#: condenser; the simulator also keeps it below its objective's NA.
SIM_CONDENSER_NA = (0.01, 1.5)
#: Rods as a fraction of the cells, and debris particles per 100 um^2: up to one per square
#: micron (a solid layer of dirt; the simulator's own bound).
SIM_ROD_FRACTION = (0.0, 1.0)
SIM_DEBRIS = (0.0, 100.0)


# --- flag types --------------------------------------------------------------------------


def integer(lo: int = 0, hi: int | None = None) -> Callable[[str], int]:
    """An integer flag within ``lo..hi``."""
    return arg_type(check_number, integer=True, lo=lo, hi=hi)


def number(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
    hi_open: bool = False,
) -> Callable[[str], float]:
    """A finite number flag within ``lo..hi`` (open ends where asked)."""
    convert = arg_type(check_number, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)

    def to_float(text: str) -> float:
        return float(convert(text))

    return to_float


def length_um(bounds: tuple[float, float]) -> Callable[[str], float]:
    """A length in um within ``bounds`` (z-steps, pixel sizes, bins)."""
    return arg_type(check_length_um, bounds=bounds)


def unit_interval(name: str) -> Callable[[str], float]:
    """A number in [0, 1), refused as ``"<name> must be in [0, 1), got ..."`` (the interval
    notation the model config uses for dropout, so flag and file read alike)."""

    def check(value: str, _name: str) -> float:
        try:
            return float(check_number(value, name, lo=0.0, hi=1.0, hi_open=True))
        except ZFocusError:
            raise ZFocusError(f"{name} must be in [0, 1), got {value!r}") from None

    return arg_type(check)


#: Random seeds of every command.
SEED = integer(0, MAX_SEED)
#: An index (slice, channel, time point, series): an integer >= 0.
INDEX = integer(0)
#: CPU threads.
THREADS = integer(1, MAX_THREADS)
#: A fraction in [0, 1].
FRACTION = number(0.0, 1.0)
#: A pixel size and a z-step of real data.
PIXEL_SIZE = length_um(PIXEL_SIZE_UM)
Z_STEP = length_um(Z_STEP_UM)
#: A condenser aperture (a stack's, a model's reference).
CONDENSER_NA = number(*CONDENSER_NA_RANGE)


def _device_as_given(value: str, name: str) -> str:
    device_name(value, name)  # the one check of the form; the flag keeps the user's text
    return value.strip()


#: A ``--device`` flag (``auto``: CUDA when present). The format only, so parsing needs no
#: torch; :func:`napari_zfocus.model.device.resolve_device` checks the machine has it, later.
DEVICE = arg_type(_device_as_given)


def per_stack_range(lo: float, hi: float) -> Callable[[str], float | tuple[float, float]]:
    """``"40"`` (fixed) or ``"15,300"`` / ``"15:300"`` (drawn per stack), within lo..hi."""

    def check(value: str, name: str) -> float | tuple[float, float]:
        parts = value.replace(":", ",").split(",")
        if len(parts) == 1:
            return float(check_number(parts[0], name, lo=lo, hi=hi))
        if len(parts) != 2:
            raise ZFocusError(f"{name} must be a number or LOW,HIGH, got {value!r}")
        low = float(check_number(parts[0], f"{name} (low)", lo=lo, hi=hi))
        high = float(check_number(parts[1], f"{name} (high)", lo=lo, hi=hi))
        if low > high:
            raise ZFocusError(f"{name} must be LOW,HIGH with LOW <= HIGH, got {value!r}")
        return low, high

    return arg_type(check)


def interval(lo: float, hi: float) -> type[argparse.Action]:
    """An ``action=`` for ``nargs=2`` flags: finite ``LOW HIGH``, increasing, in lo..hi."""

    class Interval(argparse.Action):
        def __call__(
            self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
            values: Any, option_string: str | None = None,
        ) -> None:
            try:
                pair = check_interval(values, "value", lo=lo, hi=hi)
            except ZFocusError as exc:
                raise argparse.ArgumentError(self, str(exc)) from None
            setattr(namespace, self.dest, pair)

    return Interval


def check_dataset_folder(path: Any, name: str | None = None) -> None:
    """Refuse a dataset argument that is not a folder, saying what it is instead.

    Parameters
    ----------
    path
        The dataset folder given.
    name
        The flag that gave it (``"--baseline-fit"``), named first; None for a positional.
    """
    import os

    head = f"{name} {path}" if name else f"{path}"
    if not os.path.lexists(path):
        raise ZFocusError(f"{head}: dataset folder not found")
    if not os.path.isdir(path):
        what = "is a file, not a folder" if os.path.isfile(path) else "is not a folder"
        raise ZFocusError(f"{head}: {what}; give the dataset folder (the one holding "
                          "annotations.csv)")


def add_microscope_arguments(p: argparse.ArgumentParser, simulated: str) -> None:
    """The flags that choose where frames come from and which model reads them, shared by
    ``live`` and ``acquire``: ``--simulate`` (the ``simulated`` one) or ``--mm-config CFG``,
    and ``--model``."""
    source = p.add_mutually_exclusive_group()
    source.add_argument("--simulate", action="store_true", help=f"use the {simulated}")
    source.add_argument("--mm-config", metavar="CFG", help="Micro-Manager configuration file")
    p.add_argument("--model", metavar="MODEL", help="model file (default: the demo model)")


def add_model_copy_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """The flags of a command that writes a copy of a model (``calibrate``, ``rescale``):
    ``--out`` (required; ``what`` the copy is), ``--overwrite``, ``--device`` and ``--json``."""
    from pathlib import Path

    p.add_argument("--out", type=Path, required=True, help=f"{what} model file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model --out")
    p.add_argument("--device", type=DEVICE, default=None,
                   help="torch device: auto, cpu, cuda, cuda:N, mps (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
