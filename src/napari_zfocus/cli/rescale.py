"""``zfocus rescale MODEL STACK... --out MODEL2``: measure a model's distance scale, no annotation.

After a change of the condenser (Koehler) aperture or the wavelength a model reads
distances with the wrong gain: in the right direction and right at focus, but 0.74x or
1.21x too far (README, "Beyond our own simulator"). The slices of any z-stack are a known
distance apart, so the slope of the model's reading against the slice position measures
that gain with no focus marked. This command fits it on a few stacks taken at the new
setting (:mod:`napari_zfocus.model.distance_scale`) and writes a copy of the model whose
readings are divided by it; weights, calibration and metadata are copied unchanged.

A model trained with ``--reference-condenser-na`` (:mod:`napari_zfocus.model.aperture`)
needs no stacks: ``--condenser-na NA`` (the microscope's condenser aperture) sets its gain,
NA over its reference aperture.

With ``--json`` the last stdout line is one JSON object: ``model`` (the file written),
``gain`` (the one applied), ``measured_gain``, ``standard_error``, ``threshold`` and
``applied`` (a measured gain within ``threshold`` of 1 is no change of setting and is
applied as 1), ``previous_gain``, ``stacks``, ``stacks_fitted`` and ``per_stack``
(``stack``, ``gain``, ``slices``, ``reason`` where a stack gave no fit); with
``--condenser-na`` also ``condenser_na`` and ``reference_condenser_na``, and the
measurement's keys are null (``stacks`` 0, ``per_stack`` empty).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from napari_zfocus._json import to_json_line
from napari_zfocus.cli import _args
from napari_zfocus.errors import ZFocusError

HELP = ("measure a model's distance scale on unannotated z-stacks of a new microscope "
        "setting (condenser, wavelength) and write a rescaled copy")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``rescale`` sub-command."""
    p = subparsers.add_parser("rescale", help=HELP, description=HELP + " (no annotation "
                              "needed: the slices' spacing is the ruler; 3 stacks suffice)")
    p.add_argument("model", type=Path, help="model file (.zfm)")
    p.add_argument("stacks", metavar="STACK", nargs="*",
                   help="z-stack TIFF or folder of 2-D slices, spanning focus +/- 8 um or more")
    p.add_argument("--condenser-na", type=_args.CONDENSER_NA, default=None, metavar="NA",
                   help="instead of stacks: the microscope's condenser aperture, for a model "
                        "trained with --reference-condenser-na")
    _args.add_model_copy_arguments(p, "rescaled")
    p.add_argument("--z-step", type=_args.Z_STEP, default=None, metavar="UM",
                   help="override the stacks' z-step (um)")
    p.add_argument("--pixel-size", type=_args.PIXEL_SIZE, default=None, metavar="UM",
                   help="override the stacks' pixel size (um)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``zfocus rescale``."""
    from napari_zfocus.data import read_stack
    from napari_zfocus.model.distance_scale import measure_distance_scale
    from napari_zfocus.model.inference import Predictor
    from napari_zfocus.model.io import save_rescaled_copy
    from napari_zfocus.outputs import check_model_copy

    if bool(args.stacks) == (args.condenser_na is not None):
        raise ZFocusError("give z-stacks (STACK ...) to measure the scale from, or "
                          "--condenser-na for a model trained with --reference-condenser-na "
                          "(not both)")
    check_model_copy(args.out, overwrite=args.overwrite)
    predictor = Predictor.from_file(args.model, device=args.device)
    if args.condenser_na is not None:
        return _rescale_to_aperture(args, predictor)
    # Every stack is opened (and its metadata checked) before any is read.
    stacks = [read_stack(s, z_step_um=args.z_step, pixel_size_um=args.pixel_size)
              for s in args.stacks]
    scale = measure_distance_scale(predictor, stacks)
    save_rescaled_copy(args.model, scale, args.out)
    fitted = scale.fitted
    facts = {"model": str(args.out), "gain": round(scale.gain, 4),
             "measured_gain": fitted["measured_gain"],
             "previous_gain": round(predictor.gain, 4),
             **{k: fitted[k] for k in ("standard_error", "threshold", "applied", "stacks",
                                       "stacks_fitted", "per_stack")}}
    if args.json:
        print(to_json_line(facts))
        return 0
    per_stack = ", ".join("-" if s["gain"] is None else f"{s['gain']:.2f}"
                          for s in fitted["per_stack"])
    measured = fitted["measured_gain"]
    applied = (f"its readings are divided by {scale.gain:.2f}" if fitted["applied"] else
               f"within {fitted['threshold']:.2f} of 1, no measurable change of setting: it "
               "reads distances as trained")
    print(f"wrote {args.out}: the model reads {measured:.2f}x the true distance on "
          f"{fitted['stacks_fitted']} of {fitted['stacks']} stacks (per stack: {per_stack}); "
          + applied)
    return 0


def _rescale_to_aperture(args: argparse.Namespace, predictor: Any) -> int:
    """``--condenser-na``: the gain from the aperture, no stack read."""
    from napari_zfocus.model.aperture import aperture_distance_scale
    from napari_zfocus.model.io import save_rescaled_copy

    scale = aperture_distance_scale(predictor.config, args.condenser_na, args.model)
    save_rescaled_copy(args.model, scale, args.out)
    reference = predictor.config.reference_condenser_na
    if args.json:
        print(to_json_line({
            "model": str(args.out), "gain": round(scale.gain, 4), "measured_gain": None,
            "previous_gain": round(predictor.gain, 4), "standard_error": None,
            "threshold": None, "applied": True, "stacks": 0, "stacks_fitted": 0,
            "per_stack": [], "condenser_na": args.condenser_na,
            "reference_condenser_na": reference}))
        return 0
    print(f"wrote {args.out}: condenser aperture {args.condenser_na:g} against the model's "
          f"reference {reference:g}; its readings are divided by {scale.gain:.2f}")
    return 0
