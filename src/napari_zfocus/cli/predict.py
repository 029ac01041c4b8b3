"""``zfocus predict MODEL IMAGE``: read the z-position of one bright-field image.

IMAGE is a 2-D TIFF, or a z-stack with ``--slice N``. The pixel size comes from the file's
metadata (ImageJ, OME, Micro-Manager, TIFF resolution), else ``--pixel-size``, else the
command stops with a clear error. With ``--json`` the last stdout line is one JSON object:
``z_um``, ``z_argmax_um``, ``confidence``, ``entropy``, ``bimodal``, ``softmax``,
``bin_centres_um`` (+ ``second_mode_um``, ``image``, ``pixel_size_um``, ``model``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from napari_zfocus._json import to_json_line
from napari_zfocus.cli import _args
from napari_zfocus.errors import ZFocusError, describe


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``predict`` sub-command."""
    p = subparsers.add_parser(
        "predict",
        help="predict the z-position of one image",
        description="Read the z-position (um from focus) of one bright-field image with a model.",
    )
    p.add_argument("model", type=Path, help="model file (.zfm)")
    p.add_argument("image", type=Path, help="2-D TIFF image (or a z-stack with --slice)")
    p.add_argument(
        "--pixel-size",
        type=_args.PIXEL_SIZE,
        default=None,
        metavar="UM",
        help="pixel size in um (overrides the file's metadata)",
    )
    p.add_argument(
        "--slice", type=_args.INDEX, default=None, metavar="N",
        help="0-based slice of a z-stack to read",
    )
    p.add_argument("--device", type=_args.DEVICE, default=None,
                   help="torch device: auto, cpu, cuda, cuda:N, mps (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)
    return p


def read_image(
    path: Path, slice_index: int | None = None, pixel_size_um: float | None = None
) -> tuple[np.ndarray, float | None]:
    """Read a 2-D image (or one slice of a stack) and its pixel size (um, or ``None``).

    ``pixel_size_um`` (``--pixel-size``) overrides the file's metadata, which is then
    not checked (a file with an absurd pixel size in its metadata can still be read).

    The file goes through the stack reader, so a truncated or damaged file is refused
    (never read as a 2-D image or as fewer slices), as are RGB, 1-bit, complex and
    NaN / infinite pixels.

    Raises
    ------
    ZFocusError
        Missing or unreadable file, a stack without ``--slice`` or with one outside it,
        ``--slice`` other than 0 on a 2-D image.
    """
    from napari_zfocus.data import read_stack

    if not path.exists():
        raise ZFocusError(describe(path, "no such file"))
    stack = read_stack(path, min_slices=1, allow_2d=True, pixel_size_um=pixel_size_um)
    n = stack.n_slices
    if n == 1:
        if slice_index not in (None, 0):
            raise ZFocusError(
                f"--slice {slice_index}: {path} is a 2-D image (only --slice 0 applies)"
            )
        return stack.slice(0), stack.pixel_size_um
    if slice_index is None:
        raise ZFocusError(
            describe(path, f"holds a z-stack of shape {stack.shape}; choose a z-slice with "
                     f"--slice N (0..{n - 1})")
        )
    if not 0 <= slice_index < n:
        raise ZFocusError(f"--slice {slice_index} is out of range: {path} has {n} slices "
                          f"(0..{n - 1})")
    return stack.slice(slice_index), stack.pixel_size_um


def run(args: argparse.Namespace) -> int:
    """Run ``zfocus predict``."""
    from napari_zfocus.model.inference import Predictor

    image, file_px = read_image(args.image, args.slice, args.pixel_size)
    if float(np.ptp(image)) == 0:
        # A blank or constant frame has no focus to read; the model would still answer.
        raise ZFocusError(describe(args.image, "no contrast: the image is blank or constant "
                                   f"(every pixel {float(image.flat[0]):g}), so there is no z "
                                   "to read"))
    px = args.pixel_size if args.pixel_size is not None else file_px
    if px is None:
        raise ZFocusError(
            describe(
                args.image, "pixel size unknown (not in the file's metadata); pass --pixel-size UM"
            )
        )
    predictor = Predictor.from_file(args.model, device=args.device)
    try:
        pred = predictor.predict(image, px)
    except ZFocusError as exc:
        raise ZFocusError(describe(args.image, str(exc))) from None
    predictor.require_finite(pred.softmax, str(args.image))  # a broken model: NaN, not a z
    out = pred.to_dict()
    out.update(image=str(args.image), pixel_size_um=float(px), model=str(args.model))
    if args.json:
        print(to_json_line(out))
        return 0
    flag = "  AMBIGUOUS (bimodal softmax)" if pred.bimodal else ""
    print(f"image        {args.image}  ({image.shape[0]} x {image.shape[1]} px, {px:g} um/px)")
    print(f"z            {pred.z_um:+.2f} um  (argmax bin {pred.z_argmax_um:+.1f} um){flag}")
    meaning = ("calibrated: P(|error| <= 1 um)" if getattr(pred, "calibrated", False)
               else "uncalibrated: mass within +/-1 bin of the mode")
    print(f"confidence   {pred.confidence:.2f}  ({meaning})")
    if getattr(pred, "ood", False):
        print("             OUT OF DISTRIBUTION: unlike the model's training images")
    print(f"entropy      {pred.entropy:.2f} nats")
    if pred.bimodal:
        print(f"second mode  {pred.second_mode_um:+.1f} um")
    return 0
