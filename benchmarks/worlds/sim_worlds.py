"""Test worlds drawn from our own simulator: its default mix and held-out parameter regions.

Every accuracy number is reported on these AND on the independent forward model of
:mod:`worlds.waveorder_world` (which our simulator did not write). The held-out regions lie
outside what ``zfocus simulate``'s default training mix draws (condenser 0.3-0.45, cell
index excess 0.03-0.05, absorption 0.003-0.015 /um, NA 1.3 oil, 0.55 um light, 15-300
cells, ceiling fraction 0-0.3, 1000-8000 photons):

=======================  ============================================================
world                    what differs from the default mix
=======================  ============================================================
own                      nothing (fresh seeds)
condenser_0.55-0.65      condenser aperture 0.55-0.65
condenser_0.12-0.2       condenser aperture 0.12-0.2
cell_dn_0.07-0.1         refractive-index excess 0.07-0.1
absorbing_cells          absorption 0.05-0.1 /um (about ten times)
dry_objective_na0.75     a dry NA 0.75 objective
red_light_0.7um          0.7 um illumination
dim_sparse_ceiling       300-1000 photons, 5-30 cells, 30-60 % on the ceiling
sparse_pillars           2-8 cells: the PDMS pillars dominate the field
ceiling_heavy            30-200 cells, 40-70 % on the ceiling
broad                    the broad preset (``zfocus simulate --preset broad``): rods,
                         debris, condenser 0.2-0.6, chamber 4-12 um, ... (its training
                         mix, fresh seeds)
=======================  ============================================================

Usage (a folder per world, reused when it already holds the stacks)::

    python benchmarks/worlds/sim_worlds.py OUT --stacks 20 --seed 31000 [--world NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

#: name -> (SimulationParams, SampleParams, OpticsParams overrides).
WORLDS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "own": ({}, {}, {}),
    "condenser_0.55-0.65": ({"condenser_na": (0.55, 0.65)}, {}, {}),
    "condenser_0.12-0.2": ({"condenser_na": (0.12, 0.2)}, {}, {}),
    "cell_dn_0.07-0.1": ({}, {"cell_dn": (0.07, 0.1)}, {}),
    "absorbing_cells": ({}, {"cell_absorption_per_um": (0.05, 0.1)}, {}),
    "dry_objective_na0.75": ({}, {}, {"na": 0.75}),
    "red_light_0.7um": ({}, {}, {"wavelength_um": 0.7}),
    "dim_sparse_ceiling": (
        {"photons": (300.0, 1000.0), "n_cells": (5.0, 30.0), "ceiling_fraction": (0.3, 0.6)},
        {}, {},
    ),
    "sparse_pillars": ({"n_cells": (2.0, 8.0)}, {}, {}),
    "ceiling_heavy": ({"n_cells": (30.0, 200.0), "ceiling_fraction": (0.4, 0.7)}, {}, {}),
    "broad": ({}, {}, {}),  # SimulationParams.broad(), see make_world
}


def make_world(name: str, folder: Path, n_stacks: int, seed: int) -> Path:
    """Simulate world ``name`` into ``folder`` unless it already holds ``n_stacks`` stacks."""
    from napari_zfocus.simulation import SimulationParams

    sim, sample, optics = WORLDS[name]
    params = SimulationParams.broad() if name == "broad" else None
    return simulate_folder(folder, n_stacks, seed, sim, sample, optics, params=params,
                           label=name)


def simulate_folder(
    folder: Path,
    n_stacks: int,
    seed: int,
    sim: dict[str, Any] | None = None,
    sample: dict[str, Any] | None = None,
    optics: dict[str, Any] | None = None,
    *,
    params: Any = None,
    label: str | None = None,
) -> Path:
    """Simulate ``folder`` (``params``, or the defaults with these overrides) unless it holds
    ``n_stacks`` annotated stacks already."""
    from napari_zfocus.data import read_dataset
    from napari_zfocus.simulation import (
        OpticsParams,
        SampleParams,
        SimulationParams,
        simulate_dataset,
    )

    csv = folder / "annotations.csv"
    if csv.is_file() and len(read_dataset(folder, check_stacks=False).annotations) == n_stacks:
        return folder
    if params is None:
        params = SimulationParams(sample=SampleParams(**(sample or {})),
                                  optics=OpticsParams(**(optics or {})), **(sim or {}))
    start = time.perf_counter()
    simulate_dataset(folder, n_stacks, seed=seed, params=params, overwrite=True)
    print(f"simulated {label or folder.name}: {n_stacks} stacks in "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="parent folder; one sub-folder per world")
    parser.add_argument("--stacks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=31000,
                        help="first seed; world k uses seed + 1000 k")
    parser.add_argument("--world", action="append", choices=sorted(WORLDS), default=None)
    args = parser.parse_args()
    for k, name in enumerate(WORLDS):
        if args.world is None or name in args.world:
            make_world(name, args.out / name, args.stacks, args.seed + 1000 * k)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
