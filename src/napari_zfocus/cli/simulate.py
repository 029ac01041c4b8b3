"""``zfocus simulate OUT --stacks N --seed S``: write a simulated bright-field dataset."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from napari_zfocus.errors import ZFocusError

HELP = "simulate bright-field z-stacks of yeast into a dataset folder"


def _range(text: str) -> float | tuple[float, float]:
    """Parse ``"40"`` (fixed) or ``"15,300"`` / ``"15:300"`` (drawn per stack)."""
    parts = text.replace(":", ",").split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or LOW,HIGH, got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2 and values[0] <= values[1]:
        return values[0], values[1]
    raise argparse.ArgumentTypeError(
        f"expected a number or LOW,HIGH with LOW <= HIGH, got {text!r}")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``simulate`` sub-command."""
    p = subparsers.add_parser(
        "simulate",
        help=HELP,
        description=(
            "Simulate bright-field z-stacks of budding yeast in a ~6 um microfluidic chamber "
            "(multi-slice angular-spectrum optics, NA 1.3 objective, Koehler illumination, "
            "camera noise) and write OUT/stack_NNN.tif plus OUT/annotations.csv "
            "(stack,focus_index,z_step_um,pixel_size_um) with the TRUE in-focus slice. "
            "Knobs marked 'per stack' take a value or a LOW,HIGH range drawn per stack."
        ),
    )
    p.add_argument("out", metavar="OUT", help="dataset folder to write")
    p.add_argument("--stacks", type=int, default=10, help="number of stacks (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--slices", type=int, default=31, help="slices per stack (default 31)")
    p.add_argument("--size", type=int, default=320, help="field size in px, square (default 320)")
    p.add_argument("--pixel-size", type=float, default=0.24, help="um per px (default 0.24)")
    p.add_argument("--z-step", type=float, default=1.0, help="um between slices (default 1.0)")
    p.add_argument("--focus-index", type=int, default=None,
                   help="fix the in-focus slice (default: random within slices//6 of the middle)")
    p.add_argument("--cells", type=_range, default=(15.0, 300.0),
                   help="cells per field, per stack (default 15,300, log-uniform)")
    p.add_argument("--ceiling-fraction", type=_range, default=(0.0, 0.3),
                   help="fraction of cells on the chamber ceiling, per stack (default 0,0.3)")
    p.add_argument("--condenser-na", type=_range, default=(0.3, 0.45),
                   help="condenser NA, per stack (default 0.3,0.45)")
    p.add_argument("--photons", type=_range, default=(1000.0, 8000.0),
                   help="background electrons per pixel (brightness / SNR), per stack "
                        "(default 1000,8000)")
    p.add_argument("--grow-hours", type=_range, default=0.0,
                   help="let the colony grow (budding, crowding, flow) this many hours before "
                        "imaging, per stack, e.g. 0,24 for time-lapse-like data (default 0)")
    p.add_argument("--source-points", type=int, default=16,
                   help="condenser source points (more = smoother far-defocus blur, slower; "
                        "default 16)")
    p.add_argument("--workers", type=int, default=2, help="FFT threads (default 2)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset in OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``zfocus simulate``."""
    # Imported here so that `zfocus --help` stays fast.
    from napari_zfocus.simulation import OpticsParams, SimulationParams, simulate_dataset

    if args.workers < 1:
        raise ZFocusError(f"--workers must be >= 1, got {args.workers}")
    if args.source_points < 1:
        raise ZFocusError(f"--source-points must be >= 1, got {args.source_points}")
    if args.size < 16:
        raise ZFocusError(f"--size must be >= 16 px, got {args.size}")
    if (Path(args.out) / "annotations.csv").exists() and not args.overwrite:
        raise ZFocusError(f"{args.out}: already contains annotations.csv "
                          "(pass --overwrite to replace it)")
    params = SimulationParams(
        pixel_size_um=args.pixel_size,
        z_step_um=args.z_step,
        n_slices=args.slices,
        shape=(args.size, args.size),
        focus_index=args.focus_index,
        n_cells=args.cells,
        grow_hours=args.grow_hours,
        ceiling_fraction=args.ceiling_fraction,
        condenser_na=args.condenser_na,
        photons=args.photons,
        optics=dataclasses.replace(OpticsParams(), workers=args.workers,
                                   n_source_points=args.source_points),
    )

    bar = None
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=args.stacks, unit="stack", desc="simulate", file=sys.stderr)

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

    try:
        csv_path = simulate_dataset(args.out, args.stacks, seed=args.seed, params=params,
                                    overwrite=args.overwrite, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"wrote {args.stacks} stacks and {csv_path}")
    return 0
