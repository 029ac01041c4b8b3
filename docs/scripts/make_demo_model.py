"""Make the shipped demo model from a trained model file (float16 weights, ~4 MB).

``docs/scripts/make_demo_model.sh`` runs the whole recipe: simulate 400 stacks (240
freshly seeded fields, 160 colonies grown for 0-24 h), train, then this script, which
stores the weights at half precision (the readout changes by far less than a bin) and
records where the model came from in its metadata::

    python docs/scripts/make_demo_model.py _scratch/demo_model/demo_full.zfm
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _ship_model import ship

DEMO = (Path(__file__).resolve().parents[2]
        / "src" / "napari_zfocus" / "resources" / "demo_model.zfm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="trained model file (.zfm)")
    parser.add_argument("--out", type=Path, default=DEMO)
    args = parser.parse_args()
    ship(args.model, args.out, "demo_model", "docs/scripts/make_demo_model.py")


if __name__ == "__main__":
    main()
