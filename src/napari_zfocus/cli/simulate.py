"""``zfocus simulate OUT --stacks N --seed S``: write a simulated bright-field dataset."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_zfocus.cli import _args
from napari_zfocus.errors import ZFocusError

if TYPE_CHECKING:
    from napari_zfocus.simulation import SimulationParams

HELP = "simulate bright-field z-stacks of yeast (or a broad mix) into a dataset folder"


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
            "Knobs marked 'per stack' take a value or a LOW,HIGH range drawn per stack. "
            "--preset broad mixes in rods, debris and the optics, chambers and cameras of "
            "other labs (ranges: SimulationParams.broad)."
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
    _add_sample_flags(p)
    p.add_argument("--workers", type=_args.THREADS, default=2, help="FFT threads (default 2)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing dataset in OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run, given=frozenset())
    return p


def _add_sample_flags(p: argparse.ArgumentParser) -> None:
    """``--preset`` and the per-stack flags that override it."""
    p.add_argument("--preset", default="default", metavar="NAME",
                   help="starting settings: 'default' (the yeast chamber) or 'broad' (wider "
                        "than any one microscope: condenser NA 0.2-0.6, rods, debris, 4-12 um "
                        "chambers, cell size / index / absorption, noise, vignetting); the "
                        "per-stack flags typed with it override it; their defaults below are "
                        "the default preset's (default: default)")
    # The per-stack flags default to the default preset's values; typed, they override
    # the --preset's (the _Given action remembers which were typed).
    p.add_argument("--cells", type=_args.per_stack_range(*_args.SIM_CELLS),
                   default=(15.0, 300.0), action=_Given,
                   help="cells per field, per stack (default 15,300, log-uniform)")
    p.add_argument("--ceiling-fraction", type=_args.per_stack_range(0.0, 1.0),
                   default=(0.0, 0.3), action=_Given,
                   help="fraction of cells on the chamber ceiling, per stack (default 0,0.3)")
    p.add_argument("--condenser-na", type=_args.per_stack_range(*_args.SIM_CONDENSER_NA),
                   default=(0.3, 0.45), action=_Given,
                   help="condenser NA, per stack (default 0.3,0.45)")
    p.add_argument("--photons", type=_args.per_stack_range(*_args.SIM_PHOTONS),
                   default=(1000.0, 8000.0), action=_Given,
                   help="background electrons per pixel (brightness / SNR), per stack "
                        "(default 1000,8000)")
    p.add_argument("--grow-hours", type=_args.per_stack_range(*_args.SIM_GROW_HOURS),
                   default=0.0, action=_Given,
                   help="let the colony grow (budding, crowding, flow) this many hours before "
                        "imaging, per stack, e.g. 0,24 for time-lapse-like data (default 0)")
    p.add_argument("--rod-fraction", type=_args.per_stack_range(*_args.SIM_ROD_FRACTION),
                   default=0.0, action=_Given,
                   help="fraction of the cells that are rods (4-14 um long, 2-4 um wide), "
                        "per stack (default 0)")
    p.add_argument("--debris", type=_args.per_stack_range(*_args.SIM_DEBRIS), default=0.0,
                   action=_Given,
                   help="debris particles (0.3-2 um, absorbing or high-index) per 100 um^2, "
                        "per stack (default 0)")
    p.add_argument("--source-points", type=_args.integer(*_args.SIM_SOURCE_POINTS), default=16,
                   action=_Given,
                   help="condenser source points (more = smoother far-defocus blur, slower; "
                        "default 16; the broad preset adds points at wide apertures unless "
                        "this is given)")


class _Given(argparse.Action):
    """Store a flag's value and remember that it was typed (``args.given``), so that a
    typed value overrides the ``--preset`` even where it equals the flag's default."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = frozenset({*getattr(namespace, "given", ()), self.dest})


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
    from napari_zfocus.simulation import OpticsParams, simulate_dataset

    params = preset_params(args)  # first: a bad --preset is refused before anything else
    check_flag_combinations(args, OpticsParams().na)
    params.validate()
    if (Path(args.out) / "annotations.csv").exists() and not args.overwrite:
        raise ZFocusError(f"{args.out}: already contains annotations.csv "
                          "(pass --overwrite to replace it)")
    check_out_folder(args.out, args.overwrite)

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


#: Per-stack flags and the SimulationParams field each one overrides.
_PER_STACK_FLAGS = (
    ("cells", "n_cells"), ("ceiling_fraction", "ceiling_fraction"),
    ("condenser_na", "condenser_na"), ("photons", "photons"), ("grow_hours", "grow_hours"),
    ("rod_fraction", "rod_fraction"), ("debris", "debris_per_100um2"),
)
#: Flags that switch on a feature the preset may give only a share of the stacks: given
#: explicitly, every stack gets it.
_FEATURE_OF_FLAG = {"grow_hours": "growth", "rod_fraction": "rods", "debris": "debris"}


def preset_params(args: argparse.Namespace) -> SimulationParams:
    """The ``--preset``'s settings with the flags given on the command line on top (a
    feature flag such as ``--rod-fraction`` puts that feature in every stack).

    Raises
    ------
    ZFocusError
        ``--preset`` is not a preset's name.
    """
    from napari_zfocus.simulation import PRESETS
    from napari_zfocus.validation import check_choice

    params = PRESETS[check_choice(args.preset, "--preset", PRESETS)]()
    given = {flag: field for flag, field in _PER_STACK_FLAGS if flag in args.given}
    forced = {_FEATURE_OF_FLAG.get(flag) for flag in given}
    changes: dict[str, Any] = {field: getattr(args, flag) for flag, field in given.items()}
    changes["feature_probability"] = {feature: p for feature, p
                                      in params.feature_probability.items()
                                      if feature not in forced}
    optics = dataclasses.replace(params.optics, workers=args.workers)
    if "source_points" in args.given:  # exactly what was asked for
        optics = dataclasses.replace(optics, n_source_points=args.source_points,
                                     source_density=0.0)
    return dataclasses.replace(
        params, pixel_size_um=args.pixel_size, z_step_um=args.z_step, n_slices=args.slices,
        shape=(args.size, args.size), focus_index=args.focus_index, optics=optics, **changes)


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
