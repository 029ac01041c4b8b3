"""``zfocus train``: train a z-position CNN on an annotated dataset folder.

Example::

    zfocus train my_dataset --out yeast40x.zfm --minutes 10
    zfocus train my_dataset --out yeast40x.zfm --minutes 30 --resume   # train longer
    zfocus train my_dataset --out yeast40x.zfm --overwrite              # start afresh
    zfocus train my_dataset --out mine.zfm --from base --minutes 3      # fine-tune the base
    torchrun --nproc_per_node 2 -m napari_zfocus.cli train my_dataset --out m.zfm --steps 2000

Ctrl-C or SIGTERM once stops cleanly (a checkpoint and a usable model are written, exit 130
or 143; continue with ``--resume``); twice aborts. While it runs, ``MODEL.lock`` (holding
its PID) keeps a second training from writing the same model. On a CPU the command
re-starts itself once with the tcmalloc allocator when ``libtcmalloc_minimal.so.4`` is
installed, which roughly halves the time per training step (set ``ZFOCUS_NO_TCMALLOC=1``
to prevent that).

At the end the model is calibrated on the validation stacks (confidence = probability of
being within +/-1 um, and an out-of-distribution reference; see
:mod:`napari_zfocus.model.calibration`); the summary says how (``--json``: ``calibration``,
null for an uncalibrated model).

``--from base|base-features|MODEL.zfm`` fine-tunes a model (see
:mod:`napari_zfocus.cli._train_from`): its network is kept, the schedule suits a few
stacks, the model file holds the last weights (the best validation's with
``--keep-best``), and the summary says what it validated on (``validation_on``), where it
started (``start_model``, ``start_validation``) and which weights it kept (``kept_step``).
``--resume`` wins over ``--from``: it continues the checkpoint (whose
run must have started from that same model).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from napari_zfocus.cli import _args, _train_from
from napari_zfocus.cli._train_summary import format_metrics, print_summary
from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import ARCHITECTURES

#: Where Debian/Ubuntu (``apt-get install libtcmalloc-minimal4``) put the allocator.
TCMALLOC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``train`` to the ``zfocus`` sub-commands."""
    p = subparsers.add_parser(
        "train",
        help="train a z-position CNN on an annotated dataset",
        description=(
            "Train the Wei & Roberts (2018) CNN to read defocus from one bright-field image. "
            "Stops at --steps or --minutes (default 10 minutes if neither is given), writes "
            "the model to --out and a resumable checkpoint to OUT.ckpt, and prints the "
            "validation metrics (median |error|, fraction within +/-1 um)."
        ),
    )
    p.add_argument("dataset", metavar="DATASET", help="dataset folder with annotations.csv")
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write (.zfm)")
    _add_budget_and_optimisation(p)
    _add_model_and_validation(p)
    _train_from.add_fine_tune_arguments(p)
    run = p.add_argument_group("execution")
    run.add_argument("--device", type=_args.DEVICE, default="auto",
                     help="auto (CUDA if present), cpu, cuda, cuda:1, mps")
    run.add_argument("--threads", type=_args.THREADS, default=None,
                     help="CPU threads (default: all cores)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run_train)
    return p


def _add_budget_and_optimisation(p: argparse.ArgumentParser) -> None:
    budget = p.add_argument_group("budget")
    budget.add_argument("--minutes", type=_args.number(0, _args.MAX_TRAIN_MINUTES, lo_open=True),
                        help="wall-clock budget, minutes")
    budget.add_argument("--steps", type=_args.integer(1, _args.MAX_STEPS),
                        help="optimiser-step budget")
    budget.add_argument("--resume", action="store_true",
                        help="continue from OUT.ckpt towards the same (or a raised) budget")
    budget.add_argument("--overwrite", action="store_true",
                        help="replace an existing model OUT and its checkpoint OUT.ckpt "
                             "(a fresh run; without it an existing model is refused)")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--batch", type=_args.integer(1, _args.MAX_BATCH), default=None,
                     help="images per step and process")
    opt.add_argument("--lr", type=_args.number(0, _args.MAX_LR, lo_open=True), default=None,
                     help="peak learning rate (Adam)")
    opt.add_argument("--label-sigma-um", type=_args.number(*_args.LABEL_SIGMA_UM), default=None,
                     help="width of the soft (Gaussian) labels, um; 0 = one-hot as in the paper")
    opt.add_argument("--init", choices=("default", "paper"), default=None,
                     help="weight initialisation (paper: truncated normal sd 0.1, needs lr ~1e-4)")
    opt.add_argument("--seed", type=_args.SEED, default=0,
                     help="seed of split, weights and batches")
    opt.add_argument("--no-augment", action="store_true", help="no random flips / rotations")
    opt.add_argument("--photometric-augment", action=argparse.BooleanOptionalAction,
                     default=None,
                     help="also random gamma, blur, noise and illumination ramps (off: at "
                          "a fixed budget it cost accuracy on every world measured)")


def _add_model_and_validation(p: argparse.ArgumentParser) -> None:
    model = p.add_argument_group(
        "model (default: the feature network at 0.48 um/px, 60 um field, 1 um bins over "
        "-20..20 um; on --resume: the checkpoint's; with --from: the start model's)"
    )
    model.add_argument("--architecture", choices=ARCHITECTURES, default=None,
                       help="network: the feature network (feature_mlp, the default: defocus "
                            "statistics and the power spectrum read by a small network, at "
                            "0.48 um/px), the compact CNN (compact_cnn: 3x3 stages and global "
                            "pooling, at 0.6 um/px) or the paper's CNN (paper_cnn, at 1.2 "
                            "um/px)")
    model.add_argument("--bin-um", type=_args.length_um(_args.BIN_UM),
                       help="z-bin size, um (paper: 1)")
    model.add_argument("--z-range", nargs=2, metavar=("MIN", "MAX"),
                       action=_args.interval(-_args.MAX_Z_RANGE_UM, _args.MAX_Z_RANGE_UM),
                       help="z range of the bins, um (paper: -20 20)")
    model.add_argument("--pixel-size-um", type=_args.PIXEL_SIZE,
                       help="pixel size the network sees (feature network 0.48, compact 0.6, "
                            "paper CNN 1.2; paper 0.24)")
    model.add_argument("--reference-condenser-na", type=_args.CONDENSER_NA, default=None,
                       metavar="NA",
                       help="for stacks of several condenser apertures (each stack's in "
                            "annotations.csv's condenser_na column): the model learns "
                            "distances as at aperture NA, so every stack teaches one scale; "
                            "'zfocus rescale MODEL --condenser-na X' then sets a "
                            "microscope's aperture (off: true distances, one setting)")
    model.add_argument("--field-um", type=_args.length_um(_args.FIELD_UM),
                       help="side of the field it sees, um (60)")
    model.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, default=None,
                       help="batch normalisation after each convolution (on)")
    model.add_argument("--dropout", type=_args.unit_interval("dropout"),
                       help="dropout before the last layer, 0 <= p < 1 (paper: 0.5)")
    val = p.add_argument_group("validation and checkpoints")
    val.add_argument("--val-fraction", type=_args.number(0.0, 1.0, hi_open=True), default=None,
                     help="fraction of STACKS held out for validation, 0 <= f < 1 (0.1)")
    val.add_argument("--validate-every", type=_args.integer(0, _args.MAX_STEPS), default=None,
                     help="steps between validations (0: none)")
    val.add_argument("--checkpoint-every", type=_args.integer(0, _args.MAX_STEPS), default=None,
                     help="steps between checkpoints (also every 2 minutes; 0: by time only)")


def _tcmalloc_path() -> str | None:
    return next((c for c in TCMALLOC_CANDIDATES if os.path.exists(c)), None)


def _maybe_reexec_with_tcmalloc(args: argparse.Namespace) -> None:
    """Restart this very command with tcmalloc preloaded (CPU training only).

    Only when started as a program (``zfocus`` / ``python -m napari_zfocus.cli``), never
    when ``main()`` is called from Python (tests, notebooks): exec replaces the process.
    """
    if os.environ.get("ZFOCUS_NO_TCMALLOC") or "tcmalloc" in os.environ.get("LD_PRELOAD", ""):
        return
    if args.device not in ("auto", "cpu") or sys.argv[1:2] != ["train"]:
        return
    prog = os.path.basename(sys.argv[0])
    if not (prog == "zfocus" or sys.argv[0].endswith(os.path.join("cli", "__main__.py"))):
        return
    lib = _tcmalloc_path()
    if lib is None:
        return
    if args.device == "auto":
        import torch  # only to know whether a GPU does the work anyway

        if torch.cuda.is_available():
            return
    env = dict(os.environ)
    env["LD_PRELOAD"] = (lib + " " + env.get("LD_PRELOAD", "")).strip()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "napari_zfocus.cli", *sys.argv[1:]], env)


def _model_config(args: argparse.Namespace, ckpt_config: Any | None, start: Any | None = None):
    """The model config from the flags; on resume unset flags keep the checkpoint's values,
    from a start model its values (a flag that contradicts them is refused)."""
    from napari_zfocus.errors import ZFocusError
    from napari_zfocus.model.config import ModelConfig

    if start is not None:
        _train_from.check_model_flags(args, start)
        return start.config
    if ckpt_config is not None:
        base = ckpt_config.to_dict()
        if args.architecture not in (None, ckpt_config.architecture):
            raise ZFocusError(
                f"--architecture {args.architecture}: the checkpoint is a "
                f"{ckpt_config.architecture}; train without --resume to change it"
            )
    else:
        architecture = args.architecture or ModelConfig.recommended().architecture
        base = ModelConfig.for_architecture(architecture).to_dict()
    given = {
        "bin_um": args.bin_um,
        "pixel_size_um": args.pixel_size_um,
        "field_um": args.field_um,
        "batchnorm": args.batchnorm,
        "dropout": args.dropout,
        "reference_condenser_na": args.reference_condenser_na,
    }
    if args.z_range is not None:
        given["z_min_um"], given["z_max_um"] = args.z_range
    base.update({k: v for k, v in given.items() if v is not None})
    config = ModelConfig.from_dict(base)
    if args.bin_um is not None or args.z_range is not None:
        config.check_bin_grid()  # a new z grid must be whole bins (a bin at focus)
    return config


def _train_config(args: argparse.Namespace, start_from: str | None = None):
    """The training settings: the flags over the defaults (fine-tuning's with a start)."""
    from napari_zfocus.training.loop import TrainConfig
    from napari_zfocus.training.recipe import fine_tune_settings

    minutes = args.minutes
    if minutes is None and args.steps is None:
        minutes = 10.0
    chosen = {
        "batch": args.batch,
        "lr": args.lr,
        "label_sigma_um": args.label_sigma_um,
        "init": args.init,
        "val_fraction": args.val_fraction,
        "validation_every": args.validate_every,
        "checkpoint_every": args.checkpoint_every,
        "threads": args.threads,
        "photometric": args.photometric_augment,
        **_train_from.fine_tune_flags(args),
    }
    return TrainConfig(
        out=Path(args.out),
        steps=args.steps,
        minutes=minutes,
        seed=args.seed,
        resume=args.resume,
        device=args.device,
        augment=not args.no_augment,
        **fine_tune_settings(start_from, chosen),
    )


def run_train(args: argparse.Namespace) -> int:
    """Run ``zfocus train``; returns 0 when done, 130 (143) when stopped by Ctrl-C (SIGTERM)."""
    _args.check_dataset_folder(args.dataset)
    from napari_zfocus.outputs import check_model_output, model_output_lock

    # Before the dataset is read and minutes of training start: never replace a user's
    # file, an earlier model only when asked to.
    check_model_output(args.out, resume=args.resume, overwrite=args.overwrite,
                       dataset=args.dataset)
    _maybe_reexec_with_tcmalloc(args)  # keeps the PID: the lock is taken after it

    from napari_zfocus.training import ddp

    is_main = ddp.env_context().is_main
    with contextlib.ExitStack() as held:
        if is_main:  # rank 0 writes the files under torchrun: it alone holds the lock
            held.enter_context(model_output_lock(args.out))
            # A run that ended between the check above and the lock has written files.
            check_model_output(args.out, resume=args.resume, overwrite=args.overwrite,
                               dataset=args.dataset)
        return _train_locked(args, is_main)


def _resume_state(args: argparse.Namespace) -> Any | None:
    """The checkpoint ``--resume`` continues (None without it); refuse a ``--steps`` budget
    it has already used, which would rewrite the files without training."""
    if not args.resume:
        return None
    from napari_zfocus.training.checkpoint import checkpoint_path, load_checkpoint

    state = load_checkpoint(checkpoint_path(args.out))
    if args.steps is not None and args.steps <= state["step"]:
        raise ZFocusError(f"--steps {args.steps}: the checkpoint is already at step "
                          f"{state['step']}; give a larger --steps or --minutes")
    return state


def _train_locked(args: argparse.Namespace, is_main: bool) -> int:
    """Read the data, train, print the summary (rank 0); the output is checked and locked."""
    from napari_zfocus.data import read_dataset
    from napari_zfocus.training.loop import CancelToken, train

    resumed = _resume_state(args)
    # Resume wins over --from (the core checks that its run started from that model);
    # a fresh --from loads the start model here, before the dataset is read.
    start = _train_from.load_start(args.start_from) if (
        args.start_from is not None and resumed is None) else None
    start_from = args.start_from if resumed is None else (
        args.start_from or resumed["train_config"].get("start_from"))
    dataset = read_dataset(args.dataset)
    mc = _model_config(args, resumed["model_config"] if resumed is not None else None, start)
    tc = _train_config(args, start_from)
    cancel = CancelToken()
    with _StopSignals(cancel, is_main) as stop:
        try:
            last = _follow(train(dataset, mc, tc, cancel), tc, args, is_main)
        except KeyboardInterrupt:  # a second signal: abort without saving
            if stop.signum != signal.SIGTERM:
                raise
            print("zfocus train: aborted by a second SIGTERM", file=sys.stderr)
            return stop.exit_code
    if last is None or not is_main:
        return 0
    return print_summary(last, args.json, stopped_code=stop.exit_code)


class _StopSignals:
    """The first Ctrl-C or SIGTERM (what schedulers and systemd send) stops the training
    cleanly: a checkpoint and a model are written, exit 130 (Ctrl-C) or 143 (SIGTERM).
    A second signal of either kind aborts (KeyboardInterrupt)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, cancel: Any, is_main: bool) -> None:
        self.cancel = cancel
        self.is_main = is_main
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._first)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def exit_code(self) -> int:
        """128 + the signal that stopped the run (130 without one: stopped early)."""
        return 128 + int(self.signum or signal.SIGINT)

    def _first(self, signum: int, frame: Any) -> None:
        self.signum = signum
        self.cancel.cancel()
        for sig in self.SIGNALS:
            signal.signal(sig, signal.default_int_handler)
        if self.is_main:
            name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
            print(f"\nstopping on {name}: saving checkpoint and model ({name} again to abort)",
                  file=sys.stderr, flush=True)


def _follow(events: Any, tc: Any, args: argparse.Namespace, is_main: bool) -> Any:
    """Show the training events (rank 0: progress bar, validation lines); return the last."""
    bar = None
    last = None
    try:
        for ev in events:
            last = ev
            if not is_main:
                continue
            if ev.kind == "start":
                print(f"training: {ev.message}", file=sys.stderr)
                if not args.no_progress:
                    bar = _make_bar(tc, ev)
            elif ev.kind == "step" and bar is not None:
                _update_bar(bar, tc, ev)
            elif ev.kind == "validation":
                msg = f"step {ev.step}: validation {format_metrics(ev.metrics)}"
                if bar is not None:
                    bar.write(msg, file=sys.stderr)
                else:
                    print(msg, file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
    return last


def _make_bar(tc, ev):
    from tqdm import tqdm

    if tc.steps is not None and tc.minutes is None:
        return tqdm(total=tc.steps, initial=ev.step, unit="step", file=sys.stderr,
                    dynamic_ncols=True)
    return tqdm(total=100, unit="%", file=sys.stderr, dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}{postfix}]")


def _update_bar(bar, tc, ev) -> None:
    if tc.steps is not None and tc.minutes is None:
        bar.update(ev.step - bar.n)
    else:
        bar.update(100 * ev.progress - bar.n)
    bar.set_postfix(step=ev.step, loss=f"{ev.loss:.3f}", img_s=f"{ev.images_per_s:.0f}",
                    refresh=False)
