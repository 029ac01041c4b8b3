"""``zfocus predict MODEL IMAGE``: read the z-position of one bright-field image.

IMAGE is a 2-D TIFF, or a z-stack with ``--slice N``. The pixel size comes from the file's
metadata (ImageJ, OME, Micro-Manager, TIFF resolution), else ``--pixel-size``, else the
command stops with a clear error. With ``--json`` the last stdout line is one JSON object:
``z_um``, ``z_argmax_um``, ``confidence``, ``entropy``, ``bimodal``, ``softmax``,
``bin_centres_um`` (+ ``second_mode_um``, ``image``, ``pixel_size_um``, ``model``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

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
        type=float,
        default=None,
        metavar="UM",
        help="pixel size in um (overrides the file's metadata)",
    )
    p.add_argument(
        "--slice", type=int, default=None, metavar="N", help="0-based slice of a z-stack to read"
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)
    return p


def read_image(path: Path, slice_index: int | None = None) -> tuple[np.ndarray, float | None]:
    """Read a 2-D image (or one slice of a stack) and its pixel size (um, or ``None``).

    Raises
    ------
    ZFocusError
        Missing or non-TIFF file, a stack without ``--slice``, a 2-D image with one,
        colour (RGB) or otherwise non-2-D data.
    """
    import tifffile

    from napari_zfocus.data.metadata import read_physical_sizes

    if not path.exists():
        raise ZFocusError(describe(path, "no such file"))
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape = tuple(int(n) for n in series.shape if n != 1)
            pixel_size = read_physical_sizes(tif).pixel_size_um
            if len(shape) == 2:
                if slice_index not in (None, 0):
                    raise ZFocusError(
                        describe(path, f"is a 2-D image; --slice {slice_index} does not apply")
                    )
                image = np.asarray(series.asarray()).reshape(shape)
                return image, pixel_size
    except ZFocusError:
        raise
    except Exception as exc:  # tifffile raises many types for non-TIFF / corrupt input
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ZFocusError(describe(path, f"cannot read as a TIFF image ({reason})")) from None
    if slice_index is None:
        raise ZFocusError(
            describe(path, f"holds an array of shape {shape}; choose a z-slice with --slice N")
        )
    from napari_zfocus.data import read_stack

    stack = read_stack(path, min_slices=1)
    return stack.slice(slice_index), stack.pixel_size_um


def run(args: argparse.Namespace) -> int:
    """Run ``zfocus predict``."""
    from napari_zfocus.model.inference import Predictor

    image, file_px = read_image(args.image, args.slice)
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
    out = pred.to_dict()
    out.update(image=str(args.image), pixel_size_um=float(px), model=str(args.model))
    if args.json:
        print(json.dumps(out))
        return 0
    flag = "  AMBIGUOUS (bimodal softmax)" if pred.bimodal else ""
    print(f"image        {args.image}  ({image.shape[0]} x {image.shape[1]} px, {px:g} um/px)")
    print(f"z            {pred.z_um:+.2f} um  (argmax bin {pred.z_argmax_um:+.1f} um){flag}")
    print(f"confidence   {pred.confidence:.2f}  (mass within +/-1 bin of the mode)")
    print(f"entropy      {pred.entropy:.2f} nats")
    if pred.bimodal:
        print(f"second mode  {pred.second_mode_um:+.1f} um")
    return 0
