"""Regenerate the sample data shipped in ``sample_data/`` (deterministic, offline).

    python docs/scripts/make_sample_data.py

* ``yeast_stack.tif``: one simulated bright-field yeast z-stack, 31 slices 1 um apart,
  256 x 256 px at 0.24 um/px, ~40 cells, in focus at slice 15.
* ``annotated_set/``: four small stacks (31 x 112 x 112) in the dataset interchange format
  (``annotations.csv`` holds the true in-focus slice), for trying annotation and training.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from napari_zfocus.data import write_stack
from napari_zfocus.simulation import SimulationParams, simulate_dataset, simulate_stack

ROOT = Path(__file__).resolve().parents[2] / "sample_data"


def main() -> None:
    stack = simulate_stack(
        SimulationParams(shape=(256, 256), focus_index=15, n_cells=40, ceiling_fraction=0.05),
        seed=2018,
    )
    write_stack(ROOT / "yeast_stack.tif", stack.data, z_step_um=1.0, pixel_size_um=0.24)
    out = ROOT / "annotated_set"
    if out.exists():
        shutil.rmtree(out)
    simulate_dataset(out, 4, seed=7313, params=SimulationParams(shape=(112, 112), n_cells=(10, 16)))
    print(f"wrote {ROOT}")


if __name__ == "__main__":
    main()
