"""The training loop: one generator of progress events, driven by the CLI and the widget.

Its parts live in small modules: the settings and events in
:mod:`~napari_zfocus.training.train_config`, the budget and learning-rate schedule in
:mod:`~napari_zfocus.training.schedule`, the labels and loss in
:mod:`~napari_zfocus.training.labels`, validation in
:mod:`~napari_zfocus.training.validation_metrics`, and one run's state (set-up, resume, one
optimiser step, checkpoint and model files) in :mod:`~napari_zfocus.training.trainer`.
Their public names are re-exported here, where callers have always imported them.

:func:`train` yields plain :class:`TrainEvent` dataclasses (picklable, no tensors):
``start``, ``step`` (every step), ``validation``, ``checkpoint``, and finally ``done`` or
``cancelled``. The caller stops it with a :class:`CancelToken` (thread-safe); on cancel a
usable checkpoint AND a usable model file are written before ``cancelled`` is yielded.

Data pipeline as in Wei & Roberts (2018): a random slice of a random training stack, a
random crop, a random flip / 90-degree rotation, per-image normalisation, cross-entropy
over z-bins, Adam. Changes that make a CPU-sized budget (minutes, not days) work, all
measured with ``benchmarks/bench_accuracy.py``:

* PyTorch's default initialisation instead of the paper's (sd 0.1 makes the 6.8 M
  parameter network need lr 1e-4 and days), a higher learning rate with a linear warm-up
  and a cosine decay over the whole budget (steps or wall-clock minutes);
* soft labels: a Gaussian over neighbouring bins (``label_sigma_um``), which teaches the
  network that z is ordered and makes the expected-value readout sub-bin accurate;
* the stacks are resampled once and kept in memory; batches are prepared by a
  background thread while the network computes; channels-last memory layout.

Fine-tuning (``TrainConfig.start_from``): the run starts from a model file's weights (its
:class:`ModelConfig` is the run's) and validates it once before the first step. On
request it keeps the weights of the best validation (``keep_best``) and stops after
``patience`` validations without a better one; with too few stacks to hold any out it
validates on the training stacks and says so (:mod:`~napari_zfocus.training.data_plan`,
:mod:`~napari_zfocus.training.keep_best`, :mod:`~napari_zfocus.training.start_model`).

Before the model file is written, the model is calibrated on the validation stacks
(:mod:`~napari_zfocus.training.calibration_fit`): temperature, confidence map and the
out-of-distribution reference go into the file.

Reproducibility: the batch and the dropout masks of step ``k`` are seeded from
``(seed, rank, k)``, so a resumed run continues exactly like an uninterrupted one (for a
step budget; a wall-clock budget depends on timing by nature) and prefetching cannot
change what a step sees.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from napari_zfocus.model.config import ModelConfig
from napari_zfocus.training import ddp
from napari_zfocus.training.labels import soft_targets
from napari_zfocus.training.prefetch import Prefetcher
from napari_zfocus.training.schedule import lr_at
from napari_zfocus.training.train_config import (
    EVENT_KINDS,
    INITS,
    TRAIN_MAX_BATCH,
    TRAIN_MAX_LABEL_SIGMA_UM,
    TRAIN_MAX_LR,
    TRAIN_MAX_MINUTES,
    TRAIN_MAX_SEED,
    TRAIN_MAX_STEPS,
    TRAIN_MAX_THREADS,
    TRAIN_MAX_VAL_IMAGES,
    CancelToken,
    TrainConfig,
    TrainEvent,
)
from napari_zfocus.training.trainer import Trainer
from napari_zfocus.training.validation_metrics import (
    predict_logits,
    regression_metrics,
    validation_metrics,
)

# Explicit re-exports: the CLI, the widget, benchmarks and tests import these from here.
__all__ = [
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
    "lr_at",
    "predict_logits",
    "regression_metrics",
    "soft_targets",
    "train",
    "validation_metrics",
]


def train(
    dataset: Any,
    model_config: ModelConfig,
    train_config: TrainConfig,
    cancel: CancelToken | None = None,
) -> Iterator[TrainEvent]:
    """Train a z-position CNN, yielding progress events.

    Parameters
    ----------
    dataset
        A :class:`napari_zfocus.data.Dataset` (``.annotations``, ``.open_stack``) or the
        path of a dataset folder.
    model_config
        The network to build (bins, z range, pixel size, field, batch-norm...).
    train_config
        Budget, optimiser, output path, resume, device...
    cancel
        Set it (from any thread) to stop: a checkpoint and a model file are written
        before the final ``cancelled`` event.

    Yields
    ------
    TrainEvent
        ``start``, then ``step`` after every optimiser step with ``validation`` and
        ``checkpoint`` events in between, and finally ``done`` or ``cancelled``. Under
        torchrun only rank 0 yields ``validation`` events and writes files.

    Raises
    ------
    ZFocusError
        Bad settings, unreadable dataset, no usable slices, a checkpoint that does not
        match ``model_config`` on resume, an unwritable output, a diverged loss.
    """
    train_config.validate()
    model_config.validate()
    cancel = cancel or CancelToken()
    t_start = time.perf_counter()
    ctx = ddp.env_context()
    device = ddp.choose_device(train_config.device, ctx)
    ctx = ddp.init_distributed(device)
    try:
        trainer = Trainer.create(_as_dataset(dataset), model_config, train_config, cancel, ctx,
                                 device, t_start)
        yield trainer.start_event()
        if trainer.start_model is not None and not trainer.resumed and trainer.validates:
            # The start model as it came, on the same images: what fine-tuning improves on.
            metrics = trainer.validate()
            yield trainer.event("validation", metrics=dict(metrics))
        yield from _steps(trainer)
        yield from _finish(trainer)
    finally:
        ddp.shutdown(ctx)


def _as_dataset(dataset: Any) -> Any:
    if isinstance(dataset, (str, os.PathLike)):
        from napari_zfocus.data import read_dataset

        return read_dataset(dataset)
    return dataset


class _Due:
    """When validations and checkpoints are due: every N steps, checkpoints also every
    ``checkpoint_every_s`` seconds."""

    def __init__(self, tc: TrainConfig) -> None:
        self.tc = tc
        self.last_checkpoint_t = time.perf_counter()

    def validation(self, step: int) -> bool:
        """Whether validation is due after ``step`` steps."""
        every = self.tc.validation_every
        return bool(every) and step % every == 0

    def checkpoint(self, step: int) -> bool:
        """Whether a checkpoint is due after ``step`` steps (or by time)."""
        tc = self.tc
        by_steps = bool(tc.checkpoint_every) and step % tc.checkpoint_every == 0
        by_time = bool(tc.checkpoint_every_s) and (
            time.perf_counter() - self.last_checkpoint_t >= tc.checkpoint_every_s
        )
        return by_steps or by_time


def _steps(trainer: Trainer) -> Iterator[TrainEvent]:
    """The step loop: until the budget is used or a cancel, with validations and
    checkpoints when due. All processes agree on when to stop (see :func:`ddp.agree`)."""
    tc, ctx = trainer.tc, trainer.ctx
    prefetch = Prefetcher(trainer.make_batch, trainer.step, enabled=tc.prefetch)
    trainer.model.train()
    due = _Due(tc)
    try:
        while True:
            # Rank 0 alone validates, so its early stop travels with the cancel flag.
            wants_stop = trainer.cancel.cancelled or bool(trainer.stopped_early)
            now, stop = ddp.agree(trainer.elapsed(), wants_stop, ctx, trainer.device)
            if stop or trainer.progress(now) >= 1.0:
                break
            if trainer.budget.schedule_t0 is None:
                trainer.budget.schedule_t0 = now
            lr = lr_at(trainer.progress(now), tc)
            t0 = time.perf_counter()
            x, target = prefetch.get(trainer.step)
            trainer.loss = trainer.optimiser_step(x, target, lr)
            trainer.count_images(time.perf_counter() - t0)
            yield trainer.event("step", loss=trainer.loss, lr=lr,
                                images_per_s=trainer.images_per_s)
            if trainer.validates and due.validation(trainer.step):
                metrics = trainer.validate()
                yield trainer.event("validation", loss=trainer.loss, metrics=dict(metrics))
                trainer.stop_early()
            if ctx.is_main and due.checkpoint(trainer.step):
                ck, _ = trainer.write_files(final=False)
                due.last_checkpoint_t = time.perf_counter()
                yield trainer.event("checkpoint", loss=trainer.loss, checkpoint_path=ck)
    finally:
        prefetch.close()


def _finish(trainer: Trainer) -> Iterator[TrainEvent]:
    """A last validation (unless just done), the model file, and ``done`` / ``cancelled``.

    An early stop (patience used up) is ``done``: the run ended as asked.
    """
    cancelled = trainer.cancel.cancelled or not (
        trainer.progress() >= 1.0 or trainer.stopped_early)
    if trainer.validates and not cancelled and trainer.validated_at != trainer.step:
        metrics = trainer.validate()
        yield trainer.event("validation", loss=trainer.loss, metrics=dict(metrics))
    ck, model_path = trainer.write_files(final=True)
    ddp.barrier(trainer.ctx)
    cal = trainer.calibration
    yield trainer.event(
        "cancelled" if cancelled else "done",
        loss=trainer.loss,
        images_per_s=trainer.images_per_s,
        metrics=dict(trainer.last_metrics),
        checkpoint_path=ck,
        model_path=model_path,
        message=trainer.calibration_note,
        calibration=(dict(cal.fitted, temperature=cal.temperature, slope=cal.slope,
                          intercept=cal.intercept) if cal is not None else {}),
        run_info=trainer.run_info(),
    )
