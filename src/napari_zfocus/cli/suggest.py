"""``zfocus suggest STACK``: suggest the in-focus slice of a bright-field z-stack.

Uses the contrast dip between the sharpness peaks (no model needed); see
:mod:`napari_zfocus.annotation.suggestion`.
"""

from __future__ import annotations

import argparse
from typing import Any

from napari_zfocus._json import to_json_line
from napari_zfocus.cli import _args


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``suggest`` sub-command."""
    parser = subparsers.add_parser(
        "suggest",
        help="suggest the in-focus slice of a z-stack (contrast minimum, no model)",
        description=(
            "Suggest the in-focus slice of a bright-field z-stack: the contrast minimum "
            "between the sharpness peaks below and above focus."
        ),
    )
    parser.add_argument("stack", metavar="STACK", help="z-stack TIFF or folder of 2-D slices")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--z-step", type=_args.Z_STEP, default=None, metavar="UM", help="override the z-step (um)"
    )
    parser.add_argument(
        "--pixel-size", type=_args.PIXEL_SIZE, default=None, metavar="UM",
        help="override the pixel size (um)",
    )
    parser.add_argument("--channel", type=_args.INDEX, default=None,
                        help="channel of a multi-channel file")
    parser.add_argument("--timepoint", type=_args.INDEX, default=None,
                        help="time point of a time series")
    parser.add_argument("--series", type=_args.INDEX, default=None,
                        help="image series of a multi-position file (stage position)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Read the stack, suggest its focus, print the result."""
    from napari_zfocus.annotation import suggest_focus
    from napari_zfocus.data import read_stack

    stack = read_stack(
        args.stack,
        z_step_um=args.z_step,
        pixel_size_um=args.pixel_size,
        channel=args.channel,
        timepoint=args.timepoint,
        series=args.series,
    )
    result = suggest_focus(stack, classic_scores=False)
    record = {
        "stack": str(args.stack),
        "focus_index": result.focus_index,
        "n_slices": stack.n_slices,
        "z_step_um": stack.z_step_um,
        "pixel_size_um": stack.pixel_size_um,
        "confidence": round(result.confidence, 4),
        "method": result.method,
        "sharpest_index": result.sharpest_index,
        "runner_up_index": result.runner_up,
    }
    if args.json:
        print(to_json_line(record))
        return 0
    step = f"{stack.z_step_um:g} um" if stack.z_step_um is not None else "unknown (1 um assumed)"
    print(
        f"{args.stack}: in-focus slice {result.focus_index} of {stack.n_slices} "
        f"(0-based; z-step {step}; confidence {result.confidence:.2f}, {result.method}); "
        f"sharpest slice {result.sharpest_index}"
        + (f"; runner-up slice {result.runner_up}" if result.runner_up is not None else "")
    )
    return 0
