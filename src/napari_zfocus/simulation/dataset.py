"""Write a simulated training/test set in the dataset interchange format.

``OUT/stack_000.tif, ...`` (ImageJ hyperstacks with z-step and pixel size) and
``OUT/annotations.csv`` with ``stack,focus_index,z_step_um,pixel_size_um`` plus a few extra
columns describing each stack (``n_cells`` in the field, ``ceiling_fraction``,
``condenser_na``, ``photons``, and each optional knob in use: ``grow_hours``, the
broad preset's ``chamber_height_um``, ``cell_diameter_um``, ``cell_dn``,
``cell_absorption_per_um``, ``rod_fraction``, ``debris_per_100um2``, ``pillars``), handy for
error analysis (e.g. failures on ceiling cells, on rods).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_zfocus._atomic import write_errors_named
from napari_zfocus.data import Annotation, write_annotations, write_stack
from napari_zfocus.errors import ZFocusError, describe
from napari_zfocus.simulation.simulated_stack import (
    SimulatedStack,
    SimulationParams,
    simulate_stack,
)

ProgressCallback = Callable[[int, int], None]

#: Columns written only when the stack drew that knob, and how each is written.
_OPTIONAL_COLUMNS = {
    "grow_hours": "{:.2f}",
    "chamber_height_um": "{:.2f}",
    "cell_diameter_um": "{:.2f}",
    "cell_dn": "{:.4f}",
    "cell_absorption_per_um": "{:.4f}",
    "rod_fraction": "{:.3f}",
    "debris_per_100um2": "{:.3f}",
    "pillars": "{:d}",
}


def stack_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of stack ``index`` of a dataset made with ``seed``.

    Independent of the number of stacks, so stack 3 of a 10-stack and of a 100-stack
    dataset with the same seed are identical.
    """
    return np.random.SeedSequence(int(seed), spawn_key=(int(index),))


def simulate_dataset(
    out: str | os.PathLike[str],
    n_stacks: int,
    seed: int = 0,
    params: SimulationParams | None = None,
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """Simulate ``n_stacks`` z-stacks into the dataset folder ``out``.

    Parameters
    ----------
    out
        Dataset folder (created).
    n_stacks
        Number of stacks.
    seed
        Master seed; the dataset is a pure function of (seed, params, n_stacks).
    params
        Simulation settings (default :class:`SimulationParams`).
    overwrite
        Replace an existing ``annotations.csv`` (and same-named stacks) in ``out``.
    progress
        Called as ``progress(done, total)`` after each stack.

    Returns
    -------
    Path
        Path of the written ``annotations.csv``. It is rewritten (atomically) after every
        stack, so an interrupted run still leaves a valid dataset of the finished stacks.

    Raises
    ------
    ZFocusError
        ``n_stacks < 1``, ``out`` is a file, ``out`` already holds a dataset and
        ``overwrite`` is false, or a write failed (naming the file; disk full...).
    """
    root = Path(out)
    _check_target(root, n_stacks, overwrite)
    params = params or SimulationParams()
    params.validate()
    root.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(n_stacks - 1)))
    annotations: list[Annotation] = []
    csv_path = root / "annotations.csv"
    for i in range(n_stacks):
        sim = simulate_stack(params, seed=stack_seed(seed, i))
        name = f"stack_{i:0{width}d}.tif"
        with write_errors_named(root / name, "stack"):
            write_stack(root / name, sim.data, z_step_um=params.z_step_um,
                        pixel_size_um=params.pixel_size_um)
        annotations.append(_annotation(name, sim, params))
        with write_errors_named(csv_path, "annotations"):
            csv_path = write_annotations(root, annotations)
        if progress is not None:
            progress(i + 1, n_stacks)
    return csv_path


def _check_target(root: Path, n_stacks: int, overwrite: bool) -> None:
    """Refuse a bad stack count, a file in the way or an existing dataset (unless asked)."""
    if n_stacks < 1:
        raise ZFocusError(describe(root, f"number of stacks must be >= 1, got {n_stacks}"))
    if root.exists() and not root.is_dir():
        raise ZFocusError(describe(root, "exists and is not a folder"))
    if (root / "annotations.csv").exists() and not overwrite:
        raise ZFocusError(
            describe(root, "already contains annotations.csv (overwrite=True replaces it)"))


def _annotation(name: str, sim: SimulatedStack, params: SimulationParams) -> Annotation:
    """The annotations.csv row of one simulated stack, with what was drawn for it."""
    return Annotation(
        stack=name,
        focus_index=sim.focus_index,
        z_step_um=params.z_step_um,
        pixel_size_um=params.pixel_size_um,
        extra={
            "n_cells": str(sim.scene.n_in_field()),
            "ceiling_fraction": f"{sim.drawn['ceiling_fraction']:.3f}",
            "condenser_na": f"{sim.drawn['condenser_na']:.3f}",
            "photons": f"{sim.drawn['photons']:.0f}",
            **{k: fmt.format(sim.drawn[k]) for k, fmt in _OPTIONAL_COLUMNS.items()
               if k in sim.drawn},
        },
    )
