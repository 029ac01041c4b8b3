"""``zfocus calibrate MODEL DATASET --out MODEL2``: calibrate a model on annotated stacks.

For a model trained before calibration existed (the shipped demo model among them), or to
re-calibrate one for another set of stacks of ITS OWN world: the confidence becomes the
probability of being within +/-1 um, and an out-of-distribution reference is fitted (see
:mod:`napari_zfocus.model.calibration`). The centre field of every slice within the
model's z range is used (at most ``--max-images``, evenly thinned). Stacks the model was
trained on make it overconfident: give held-out stacks. The weights are copied bit for bit.

With ``--json`` the last stdout line is one JSON object: ``model`` (the file written),
``temperature``, ``slope``, ``intercept``, ``images``, ``within_1um``,
``ece_uncalibrated``, ``ece_in_sample``, ``ood_reference_images``, ``flagged``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from napari_zfocus._json import to_json_line
from napari_zfocus.cli import _args
from napari_zfocus.training.train_config import CALIBRATION_MAX_IMAGES

HELP = "calibrate a model's confidence and out-of-distribution check on annotated stacks"
#: Largest number of images used.
MAX_IMAGES = 100_000


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``calibrate`` sub-command."""
    p = subparsers.add_parser("calibrate", help=HELP, description=HELP + " (held-out stacks "
                              "of the model's own world; the weights are copied unchanged)")
    p.add_argument("model", type=Path, help="model file (.zfm)")
    p.add_argument("dataset", type=Path, help="dataset folder with annotations.csv")
    _args.add_model_copy_arguments(p, "calibrated")
    p.add_argument("--max-images", type=_args.integer(1, MAX_IMAGES),
                   default=CALIBRATION_MAX_IMAGES,
                   help=f"most images used, evenly thinned (default {CALIBRATION_MAX_IMAGES})")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``zfocus calibrate``."""
    from napari_zfocus._generators import run_to_end
    from napari_zfocus.cli.evaluate import load_dataset
    from napari_zfocus.model.device import resolve_device
    from napari_zfocus.model.io import load_model
    from napari_zfocus.outputs import check_model_copy
    from napari_zfocus.training.calibrate_file import iter_calibrate_model_file
    from napari_zfocus.training.calibration_fit import describe_calibration

    check_model_copy(args.out, overwrite=args.overwrite)
    loaded = load_model(args.model)
    dataset = load_dataset(args.dataset)
    calibration = run_to_end(iter_calibrate_model_file(
        loaded, dataset, args.out, max_images=args.max_images,
        device=resolve_device(args.device, "--device"), source=f"dataset {args.dataset}"))
    assert calibration is not None  # only a cancel returns None, and none was given
    facts = dict(calibration.fitted, model=str(args.out), temperature=calibration.temperature,
                 slope=calibration.slope, intercept=calibration.intercept)
    if args.json:
        print(to_json_line(facts))
    else:
        line = describe_calibration(calibration.fitted, calibration.temperature)
        print(f"wrote {args.out}: {line}")
    return 0
