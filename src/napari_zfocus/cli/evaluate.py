"""``zfocus eval MODEL DATASET``: errors of a model on an annotated dataset.

With ``--json`` the last stdout line is one JSON object with ``n_images``,
``median_abs_error_um``, ``within_1um`` (fraction), ``mse_um2``, ``bias_um``,
``sign_accuracy``, ``ece`` (expected calibration error, 10 bins, of the confidence for
|error| <= 1 um), ``flagged`` (share of images flagged: confidence < 0.3 or out of
distribution), ``calibrated`` (whether the model file holds a calibration),
``distance_gain`` (``gain``: the model's reading per true um near focus, median over the
stacks, as ``zfocus rescale`` measures it; ``change``: whether it differs from 1 by more
than the stacks' ``threshold``; ``stacks``; null when no stack gives a slope), ``argmax``
(the same metrics with the paper's argmax readout), ``baselines`` ({name: metrics}) and
``by_true_z``. Without it, a readable table.
``--plots DIR`` writes PNGs and CSVs (per-image errors, confusion matrix). A progress bar
goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from napari_zfocus._generators import run_to_end
from napari_zfocus._json import to_json_line
from napari_zfocus.cli import _args


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``eval`` sub-command."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model on an annotated dataset",
        description="Evaluate a model on every slice (within its z range) of an annotated "
        "dataset; optionally compare with focus-score baselines.",
    )
    p.add_argument("model", type=Path, help="model file (.zfm)")
    p.add_argument("dataset", type=Path, help="dataset folder with annotations.csv")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="write PNG plots and CSVs of per-image errors and the confusion matrix",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also evaluate the focus-score (IQA profile) baselines of the paper",
    )
    p.add_argument(
        "--baseline-fit",
        type=Path,
        default=None,
        metavar="DATASET",
        help="fit the baselines' score->|z| mapping on this (training) dataset "
        "instead of leave-one-stack-out",
    )
    p.add_argument(
        "--crops",
        choices=("centre", "tiles"),
        default="centre",
        help="centre field of each image (the paper) or every field-sized tile",
    )
    p.add_argument("--device", type=_args.DEVICE, default=None,
                   help="torch device: auto, cpu, cuda, cuda:N, mps (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def load_dataset(path: Path, name: str | None = None) -> Any:
    """Read an annotated dataset (``DatasetError`` on bad rows); ``name``: its flag."""
    from napari_zfocus.data import read_dataset

    _args.check_dataset_folder(path, name)
    return read_dataset(path)


def _run_with_progress(gen: Any, show: bool) -> Any:
    """Drive an evaluation generator to its result, one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def show_event(event: Any) -> None:
        bar = bars.get(event.stage)
        if bar is None:
            bar = bars[event.stage] = tqdm(
                total=event.total,
                desc=event.stage,
                unit="img" if event.stage == "cnn" else "score",
                file=sys.stderr,
                leave=False,
            )
        bar.n = event.done
        bar.refresh()

    try:
        return run_to_end(gen, show_event if show else None)
    finally:
        for bar in bars.values():
            bar.close()


def run(args: argparse.Namespace) -> int:
    """Run ``zfocus eval``."""
    from napari_zfocus.errors import ZFocusError, describe
    from napari_zfocus.inspection.evaluation import iter_evaluate
    from napari_zfocus.inspection.metrics_table import text_table
    from napari_zfocus.model.inference import Predictor
    from napari_zfocus.training.calibrate_file import check_z_coverage

    if args.baseline_fit is not None and not args.baselines:
        raise ZFocusError("--baseline-fit fits the focus-score baselines: add --baselines")
    if args.plots is not None:  # before the evaluation, not after it
        check_plots_folder(args.plots, [args.dataset, args.baseline_fit])
    dataset = load_dataset(args.dataset)
    fit = (load_dataset(args.baseline_fit, "--baseline-fit")
           if args.baseline_fit is not None else None)
    predictor = Predictor.from_file(args.model, device=args.device)
    check_z_coverage(dataset, predictor.config)
    gen = iter_evaluate(
        predictor, dataset, baselines=args.baselines, crops=args.crops, fit_dataset=fit
    )
    try:
        result = _run_with_progress(gen, show=not args.no_progress)
    except ZFocusError as exc:
        msg = str(exc)
        raise ZFocusError(
            msg if str(args.dataset) in msg else describe(args.dataset, msg)
        ) from None

    summary = result.to_json_dict()
    summary.update(model=str(args.model), dataset=str(args.dataset), crops=args.crops,
                   calibrated=predictor.calibrated)
    if args.json:
        print(to_json_line(summary))
    else:
        print(f"model {args.model} on {args.dataset}")
        print(text_table(summary))
        if not predictor.calibrated:
            print("(uncalibrated model: the confidence is the softmax mass within +/-1 bin of "
                  "the mode and there is no out-of-distribution check; see zfocus calibrate)")
        gain = summary.get("distance_gain")
        if gain and gain["change"]:
            print(f"(the model reads {gain['gain']:.2f}x the true distance on these "
                  f"{gain['stacks']} stacks: another condenser aperture or wavelength? "
                  "zfocus rescale measures and corrects it from unannotated stacks)")
    if args.plots is not None:  # after the results: a write that fails anyway loses nothing else
        _write_plots(result, args.plots)
    return 0


def _write_plots(result: Any, folder: Path) -> None:
    from napari_zfocus.errors import ZFocusError
    from napari_zfocus.inspection.plots import save_evaluation_plots

    try:
        written = save_evaluation_plots(result, folder)
    except OSError as exc:
        raise ZFocusError(
            f"--plots {folder}: cannot write the plots ({exc.strerror or exc})") from None
    print(f"wrote {len(written)} files to {folder}", file=sys.stderr)


def check_plots_folder(folder: Path, datasets: list[Path | None] | None = None) -> Path:
    """Refuse a ``--plots`` folder that cannot be written, that is one of the ``datasets``
    or inside one (plots would litter the data), or that holds a file of the same name as
    an output that is not an earlier evaluation's (those are replaced)."""
    from napari_zfocus.errors import ZFocusError
    from napari_zfocus.inspection.plots import EVALUATION_FILES
    from napari_zfocus.outputs import check_output_folder, starts_with

    where = folder.resolve()
    for ds in filter(None, datasets or []):
        root = Path(ds).resolve()
        if where == root or root in where.parents:
            what = "is the dataset folder" if where == root else "is inside the dataset folder"
            raise ZFocusError(f"--plots {folder}: {what} {ds}; write the plots to a folder "
                              "outside the dataset")

    files = {name: starts_with(head) for name, head in EVALUATION_FILES.items()}
    return check_output_folder(folder, "--plots", files=files, kind="an earlier eval output")
