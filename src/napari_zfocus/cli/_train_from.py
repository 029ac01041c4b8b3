"""``zfocus train --from base|base-features|MODEL.zfm``: fine-tuning flags and start model.

The start model decides the network: its architecture, z-bins and input setting. A model
flag that repeats its value is fine; one that contradicts it is a one-line error naming
the flag and the start model's value (a fine-tune cannot change the network it starts
from). Its schedule (:data:`napari_zfocus.training.recipe.FINE_TUNE_RECIPE`) only sets
defaults: every explicit flag wins.
"""

from __future__ import annotations

import argparse
from typing import Any

from napari_zfocus.cli import _args
from napari_zfocus.errors import ZFocusError

#: Model flag -> the ModelConfig settings it sets.
_MODEL_FLAGS = {
    "--architecture": ("architecture",),
    "--bin-um": ("bin_um",),
    "--z-range": ("z_min_um", "z_max_um"),
    "--pixel-size-um": ("pixel_size_um",),
    "--field-um": ("field_um",),
    "--batchnorm": ("batchnorm",),
    "--dropout": ("dropout",),
    "--reference-condenser-na": ("reference_condenser_na",),
}


def add_fine_tune_arguments(p: argparse.ArgumentParser) -> None:
    """``--from`` and the flags of the few-stack schedule."""
    g = p.add_argument_group(
        "fine-tuning (defaults with --from: lr 3e-4, a short warm-up, "
        "the last weights, no early stop, hold out stacks only from 5 on)"
    )
    g.add_argument("--from", dest="start_from", metavar="base|base-features|MODEL.zfm",
                   default=None,
                   help="start from the packaged base model (base: the compact CNN; "
                        "base-features: the feature network) or a model file: its "
                        "architecture, z-bins and input are kept")
    g.add_argument("--keep-best", action=argparse.BooleanOptionalAction, default=None,
                   help="write the weights of the best validation, not the last ones")
    g.add_argument("--patience", type=_args.integer(0, _args.MAX_STEPS), default=None,
                   metavar="N",
                   help="stop after N validations without improvement (0: never)")
    g.add_argument("--holdout-min-stacks", type=_args.integer(0, _args.MAX_STEPS),
                   default=None, metavar="N",
                   help="hold out validation stacks only from N annotated stacks on; with "
                        "fewer, validate on the training stacks (0: from 2 on)")


def fine_tune_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The fine-tuning settings the user typed (``None``: not typed)."""
    return {"keep_best": args.keep_best, "patience": args.patience,
            "holdout_min_stacks": args.holdout_min_stacks}


def load_start(spec: str) -> Any:
    """The start model, fully checked (a tampered or missing file: one line, exit 2)."""
    from napari_zfocus.training.start_model import load_start_model

    return load_start_model(spec)


def given_model_flags(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The model flags the user typed: flag -> {setting: value}."""
    given: dict[str, dict[str, Any]] = {}
    if args.z_range is not None:
        given["--z-range"] = dict(zip(_MODEL_FLAGS["--z-range"], args.z_range, strict=True))
    for flag in ("--bin-um", "--pixel-size-um", "--field-um", "--batchnorm", "--dropout",
                 "--reference-condenser-na"):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            given[flag] = {_MODEL_FLAGS[flag][0]: value}
    return given


def check_model_flags(args: argparse.Namespace, start: Any) -> None:
    """Refuse a model flag that contradicts the start model (one line naming both).

    Raises
    ------
    ZFocusError
        ``"--bin-um 2: the start model base_model.zfm has bin_um 1; ..."``.
    """
    have = start.config.to_dict()
    for flag, settings in given_model_flags(args).items():
        if all(_same(value, have.get(name)) for name, value in settings.items()):
            continue
        typed = " ".join(_show(v) for v in settings.values())
        theirs = ", ".join(f"{name} {_show(have.get(name))}" for name in settings)
        if flag == "--batchnorm":
            flag, typed = ("--batchnorm" if settings["batchnorm"] else "--no-batchnorm"), ""
        raise ZFocusError(
            f"{flag}{' ' + typed if typed else ''}: the start model {start.path.name} has "
            f"{theirs}; fine-tuning keeps its architecture, z-bins and input (leave the "
            "flag out, or train from scratch)"
        )


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:  # an optional setting (the reference condenser aperture)
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{float(value):g}"
