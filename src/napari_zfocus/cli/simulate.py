"""``zfocus simulate OUT --stacks N --seed S``: write a simulated bright-field dataset."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from napari_zfocus.cli import _args
from napari_zfocus.errors import ZFocusError

HELP = "simulate bright-field z-stacks of yeast into a dataset folder"


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
    p.add_argument("--stacks", type=_args.integer(1, _args.MAX_SIM_STACKS), default=10,
                   help="number of stacks (default 10)")
    p.add_argument("--seed", type=_args.SEED, default=0, help="random seed (default 0)")
    p.add_argument("--slices", type=_args.integer(*_args.SIM_SLICES), default=31,
                   help="slices per stack (default 31)")
    p.add_argument("--size", type=_args.integer(*_args.SIM_FRAME_PX), default=320,
                   help="field size in px, square (default 320)")
    p.add_argument("--pixel-size", type=_args.length_um(_args.SIM_PIXEL_SIZE_UM), default=0.24,
                   help="um per px (default 0.24)")
    p.add_argument("--z-step", type=_args.length_um(_args.SIM_Z_STEP_UM), default=1.0,
                   help="um between slices (default 1.0)")
    p.add_argument("--focus-index", type=_args.INDEX, default=None,
                   help="fix the in-focus slice (default: random within slices//6 of the middle)")
    p.add_argument("--cells", type=_args.per_stack_range(*_args.SIM_CELLS),
                   default=(15.0, 300.0),
                   help="cells per field, per stack (default 15,300, log-uniform)")
    p.add_argument("--ceiling-fraction", type=_args.per_stack_range(0.0, 1.0),
                   default=(0.0, 0.3),
                   help="fraction of cells on the chamber ceiling, per stack (default 0,0.3)")
    p.add_argument("--condenser-na", type=_args.per_stack_range(*_args.SIM_CONDENSER_NA),
                   default=(0.3, 0.45),
                   help="condenser NA, per stack (default 0.3,0.45)")
    p.add_argument("--photons", type=_args.per_stack_range(*_args.SIM_PHOTONS),
                   default=(1000.0, 8000.0),
                   help="background electrons per pixel (brightness / SNR), per stack "
                        "(default 1000,8000)")
    p.add_argument("--grow-hours", type=_args.per_stack_range(*_args.SIM_GROW_HOURS),
                   default=0.0,
                   help="let the colony grow (budding, crowding, flow) this many hours before "
                        "imaging, per stack, e.g. 0,24 for time-lapse-like data (default 0)")
    p.add_argument("--source-points", type=_args.integer(*_args.SIM_SOURCE_POINTS), default=16,
                   help="condenser source points (more = smoother far-defocus blur, slower; "
                        "default 16)")
    p.add_argument("--workers", type=_args.THREADS, default=2, help="FFT threads (default 2)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset in OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def check_flag_combinations(args: argparse.Namespace, objective_na: float) -> None:
    """Refuse flags that are each fine but together cannot give a dataset.

    Raises
    ------
    ZFocusError
        ``--focus-index`` outside the ``--slices``, or a ``--condenser-na`` not below the
        simulated objective's NA (the condenser cannot fill more than the objective).
    """
    if args.focus_index is not None and args.focus_index >= args.slices:
        raise ZFocusError(
            f"--focus-index {args.focus_index} is outside the {args.slices} slices "
            f"(0..{args.slices - 1})"
        )
    na = args.condenser_na
    highest = max(na) if isinstance(na, tuple) else na
    if highest >= objective_na:
        raise ZFocusError(
            f"--condenser-na {highest:g} must stay below the objective's NA {objective_na:g}"
        )


def run(args: argparse.Namespace) -> int:
    """Run ``zfocus simulate``."""
    # Imported here so that `zfocus --help` stays fast.
    from napari_zfocus.simulation import OpticsParams, SimulationParams, simulate_dataset

    check_flag_combinations(args, OpticsParams().na)
    if (Path(args.out) / "annotations.csv").exists() and not args.overwrite:
        raise ZFocusError(f"{args.out}: already contains annotations.csv "
                          "(pass --overwrite to replace it)")
    check_out_folder(args.out, args.overwrite)
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

    created = _missing_folders(Path(args.out))
    try:
        csv_path = simulate_dataset(args.out, args.stacks, seed=args.seed, params=params,
                                    overwrite=args.overwrite, progress=progress)
    except BaseException:  # a failed write, Ctrl-C: leave no empty folder behind
        _remove_if_empty(created)
        raise
    finally:
        if bar is not None:
            bar.close()
    print(f"wrote {args.stacks} stacks and {csv_path}")
    return 0


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet (the run creates them)."""
    missing = []
    for p in (folder, *folder.parents):
        if os.path.lexists(p):
            break
        missing.append(p)
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders this run created (deepest first) while they hold nothing: a run
    that wrote no stack leaves no trace, one that wrote some keeps them."""
    for folder in folders:
        try:
            folder.rmdir()  # only ever removes an empty folder
        except OSError:
            return


def check_out_folder(out: str, overwrite: bool) -> Path:
    """Refuse OUT before simulating: a file, an unwritable place, or (without --overwrite)
    a folder holding stacks named like the ones written (``stack_NNN.tif``)."""
    import re

    from napari_zfocus.outputs import check_output_folder

    folder = check_output_folder(out, "OUT", files={"annotations.csv": None},
                                 overwrite=overwrite, overwrite_flag="--overwrite",
                                 kind="a dataset's annotations.csv")
    if folder.is_dir() and not overwrite:
        stacks = sorted(n for n in os.listdir(folder) if re.fullmatch(r"stack_\d+\.tif", n))
        if stacks:
            raise ZFocusError(f"OUT {out}: already holds stacks such as {stacks[0]} that "
                              "would be replaced; pass --overwrite to replace them")
    return folder
