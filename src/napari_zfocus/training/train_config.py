"""What a training run is asked to do and what it reports: settings, events, cancel.

Plain data, no torch: the widget, the CLI and the run-state model import these without
loading the network code. :func:`napari_zfocus.training.loop.train` consumes a
:class:`TrainConfig` and yields :class:`TrainEvent` s; a :class:`CancelToken` stops it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_zfocus.bounds import MAX_SEED
from napari_zfocus.errors import ZFocusError
from napari_zfocus.validation import check_choice, check_number

__all__ = [
    "CALIBRATION_MAX_IMAGES",
    "EVENT_KINDS",
    "INITS",
    "TRAIN_MAX_BATCH",
    "TRAIN_MAX_LABEL_SIGMA_UM",
    "TRAIN_MAX_LR",
    "TRAIN_MAX_MINUTES",
    "TRAIN_MAX_SEED",
    "TRAIN_MAX_STEPS",
    "TRAIN_MAX_THREADS",
    "TRAIN_MAX_VAL_IMAGES",
    "CancelToken",
    "TrainConfig",
    "TrainEvent",
]

EVENT_KINDS = ("start", "step", "validation", "checkpoint", "done", "cancelled")
INITS = ("default", "paper")

# ---- Bounds of the training settings, in one place (checked by TrainConfig.validate).
#: Images per step and process: the widget's limit; more would not fit in memory anyway.
#: Images a calibration reads at most by default (``zfocus calibrate --max-images``, the
#: inspection dock's Calibrate tab), evenly thinned over the stacks: here, not in
#: :mod:`.calibrate_file`, so the command line reads it without importing torch.
CALIBRATION_MAX_IMAGES = 5000

TRAIN_MAX_BATCH = 4096
#: Peak Adam learning rate: the useful range is 1e-4..1e-2; above 1 is a typo.
TRAIN_MAX_LR = 1.0
#: Step budget and step intervals: 1e9 steps is decades on any machine.
TRAIN_MAX_STEPS = 10**9
#: Wall-clock budget: one year, in minutes.
TRAIN_MAX_MINUTES = 60 * 24 * 366
#: Soft-label width, um (as wide as the largest z range allows).
TRAIN_MAX_LABEL_SIGMA_UM = 1000.0
#: Validation images kept in memory.
TRAIN_MAX_VAL_IMAGES = 1_000_000
#: Seeds: the one bound every seed of the project keeps (``bounds.MAX_SEED``).
TRAIN_MAX_SEED = MAX_SEED
#: CPU threads.
TRAIN_MAX_THREADS = 1024


def _check_int(value: Any, name: str, lo: int, hi: int) -> int:
    """An integer (not a bool, a string or 2.5) in ``lo..hi``; the message names the field."""
    return int(check_number(value, name, lo=lo, hi=hi, integer=True, strict=True))


@dataclass
class TrainConfig:
    """How to train (the network itself is described by :class:`ModelConfig`).

    Budgets: training stops at ``steps`` optimiser steps or ``minutes`` of wall-clock
    time (counted from the start of the first run, data loading included), whichever
    comes first; the learning-rate schedule spans the same budget. Resuming continues
    towards the same budget: raise it to train longer.

    Starting from a model and few stacks (fine-tuning; the defaults of
    :data:`napari_zfocus.training.recipe.FINE_TUNE_RECIPE` set them):

    ``start_from``
        ``"base"`` (the packaged base model) or a model file: its weights are the start,
        its :class:`ModelConfig` must be the run's. ``None``: random initialisation.
    ``keep_best``
        Write the weights of the best validation (lowest median |error|, then most
        within +/-1 um) into the model file instead of the last ones.
    ``patience``
        Stop after this many validations without improvement (0: never).
    ``holdout_min_stacks``
        Hold out validation stacks only from this many annotated stacks on; with fewer,
        train on all of them and validate on their own images (``keep_best`` and
        ``patience`` are then off: such a validation cannot pick a best). 0: hold out
        from 2 stacks on, as before this setting existed.
    """

    out: str | Path = "model.zfm"
    steps: int | None = None
    minutes: float | None = None
    batch: int = 32
    lr: float = 1e-3
    warmup_fraction: float = 0.05
    final_lr_fraction: float = 0.02
    weight_decay: float = 0.0
    label_sigma_um: float = 1.0
    init: str = "default"
    augment: bool = True
    photometric: bool = False
    start_from: str | None = None
    keep_best: bool = False
    patience: int = 0
    holdout_min_stacks: int = 0
    seed: int = 0
    val_fraction: float = 0.1
    val_max_images: int = 400
    validation_every: int = 100
    checkpoint_every: int = 200
    checkpoint_every_s: float = 120.0
    resume: bool = False
    device: str = "auto"
    threads: int | None = None
    channels_last: bool = True
    amp: bool = True
    prefetch: bool = True

    def validate(self) -> None:
        """Raise :class:`ZFocusError` naming the first impossible or out-of-range setting.

        The bounds are the ``TRAIN_*`` constants of this module; the device must exist
        here (:func:`napari_zfocus.model.device.check_device`).
        """
        from napari_zfocus.model.device import check_device

        if self.steps is None and self.minutes is None:
            raise ZFocusError("give a training budget: steps and/or minutes")
        if not isinstance(self.out, (str, os.PathLike)) or not os.fspath(self.out).strip():
            raise ZFocusError(f"out must be a model file path, got {self.out!r}")
        if self.steps is not None:
            _check_int(self.steps, "steps", 1, TRAIN_MAX_STEPS)
        if self.minutes is not None:
            check_number(self.minutes, "minutes", lo=0, hi=TRAIN_MAX_MINUTES, lo_open=True,
                         strict=True)
        _check_int(self.batch, "batch", 1, TRAIN_MAX_BATCH)
        check_number(self.lr, "lr", lo=0, hi=TRAIN_MAX_LR, lo_open=True, strict=True)
        check_number(self.warmup_fraction, "warmup_fraction", lo=0, hi=1, hi_open=True,
                     strict=True)
        check_number(self.final_lr_fraction, "final_lr_fraction", lo=0, hi=1, strict=True)
        check_number(self.weight_decay, "weight_decay", lo=0, hi=1, strict=True)
        check_number(self.label_sigma_um, "label_sigma_um", lo=0, hi=TRAIN_MAX_LABEL_SIGMA_UM,
                     strict=True)
        check_number(self.val_fraction, "val_fraction", lo=0, hi=1, hi_open=True, strict=True)
        _check_int(self.val_max_images, "val_max_images", 0, TRAIN_MAX_VAL_IMAGES)
        _check_int(self.validation_every, "validation_every", 0, TRAIN_MAX_STEPS)
        _check_int(self.checkpoint_every, "checkpoint_every", 0, TRAIN_MAX_STEPS)
        check_number(self.checkpoint_every_s, "checkpoint_every_s", lo=0,
                     hi=TRAIN_MAX_MINUTES * 60, strict=True)
        _check_int(self.seed, "seed", 0, TRAIN_MAX_SEED)
        if self.start_from is not None and (
            not isinstance(self.start_from, str) or not self.start_from.strip()
        ):
            raise ZFocusError(
                f"start_from must be a base model's word ('base', 'base-features') or a "
                f"model file, got {self.start_from!r}"
            )
        _check_int(self.patience, "patience", 0, TRAIN_MAX_STEPS)
        _check_int(self.holdout_min_stacks, "holdout_min_stacks", 0, TRAIN_MAX_STEPS)
        if self.threads is not None:
            _check_int(self.threads, "threads", 1, TRAIN_MAX_THREADS)
        check_choice(self.init, "init", INITS)
        for name in ("augment", "photometric", "keep_best", "resume", "channels_last", "amp",
                     "prefetch"):
            if not isinstance(getattr(self, name), bool):
                raise ZFocusError(f"{name} must be true or false, got {getattr(self, name)!r}")
        check_device(self.device, "device")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in checkpoints and model metadata)."""
        d = dataclasses.asdict(self)
        d["out"] = str(self.out)
        return d


@dataclass
class TrainEvent:
    """One progress report of a training run (plain data: safe to send between threads).

    Attributes
    ----------
    kind
        ``'start' | 'step' | 'validation' | 'checkpoint' | 'done' | 'cancelled'``.
    step
        Optimiser steps completed so far (over all runs of a resumed training).
    total_steps
        The step budget, or ``None`` for a time-only budget.
    progress
        Fraction of the budget used, 0..1 (for progress bars under either budget).
    elapsed_s
        Wall-clock seconds of training so far (over all runs).
    loss
        Training loss of this step (``step``), or the last one.
    lr
        Learning rate of this step.
    images_per_s
        Recent throughput, all processes together.
    metrics
        Validation metrics (``validation``, ``done``, ``cancelled``): see
        :func:`~napari_zfocus.training.validation_metrics.regression_metrics`.
    checkpoint_path, model_path
        Files written (``checkpoint``, ``done``, ``cancelled``).
    message
        A line for humans (``start``: what is being trained on; ``done`` and
        ``cancelled``: the calibration, or why there is none).
    calibration
        ``done`` / ``cancelled``: the calibration's numbers and how it was fitted (see
        :mod:`~napari_zfocus.training.calibration_fit`); empty when uncalibrated.
    run_info
        ``start``, ``done`` and ``cancelled``: what the run validated on
        (``validation_on``), the model it started from (``start_model``, ``None`` from
        scratch) and its validation before the first step (``start_validation``);
        ``done`` / ``cancelled`` also which weights the model file holds (``kept_step``,
        ``kept``) and why it stopped before its budget (``stopped_early``, "" if not).
    """

    kind: str
    step: int
    total_steps: int | None = None
    progress: float = 0.0
    elapsed_s: float = 0.0
    loss: float | None = None
    lr: float | None = None
    images_per_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint_path: str | None = None
    model_path: str | None = None
    message: str = ""
    calibration: dict[str, Any] = field(default_factory=dict)
    run_info: dict[str, Any] = field(default_factory=dict)


class CancelToken:
    """Thread-safe stop request: the widget (or a Ctrl-C handler) calls :meth:`cancel`."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the training loop to save and stop after the current step."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()
