"""Make the shipped base model from a trained model file (float16 weights).

``docs/scripts/make_base_model.sh`` runs the whole recipe: simulate the broad mix
(``zfocus simulate --preset broad``), train, then this script, which stores the weights
at half precision and records in the metadata what the base model was trained on, so
that ``zfocus eval``/the inspection dock and every fine-tuned model say it::

    python docs/scripts/make_base_model.py _scratch/base_model/base_full.zfm
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _ship_model import ship

BASE = (Path(__file__).resolve().parents[2]
        / "src" / "napari_zfocus" / "resources" / "base_model.zfm")

#: What the base model saw, in words (the exact ranges: SimulationParams.broad).
TRAINED_ON = (
    "simulated bright-field stacks of napari-zfocus's broad preset (zfocus simulate "
    "--preset broad): yeast-like cells 2.5-8 um and rods on 40 % of fields, 5-400 cells, "
    "0-50 % on the ceiling, 4-12 um chambers, debris, PDMS pillars, condenser NA 0.2-0.6, "
    "objective NA 1.3 (oil), 0.55 um light, 200-20000 photons, 31 slices 1 um apart at "
    "0.24 um/px. Not seen: other objectives (dry, NA < 1), other wavelengths, phase "
    "contrast or DIC, fluorescence, other pixel sizes than what resampling fixes."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="trained model file (.zfm)")
    parser.add_argument("--out", type=Path, default=BASE)
    args = parser.parse_args()
    ship(args.model, args.out, "base_model", "docs/scripts/make_base_model.sh",
         trained_on=TRAINED_ON)


if __name__ == "__main__":
    main()
