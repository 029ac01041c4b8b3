"""The training loop: one generator of progress events, driven by the CLI and the widget.

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

Reproducibility: the batch and the dropout masks of step ``k`` are seeded from
``(seed, rank, k)``, so a resumed run continues exactly like an uninterrupted one (for a
step budget; a wall-clock budget depends on timing by nature) and prefetching cannot
change what a step sees.
"""

from __future__ import annotations

import dataclasses
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from napari_zfocus.errors import ModelFileError, ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.network import build_network, init_paper_weights
from napari_zfocus.model.readout import readout
from napari_zfocus.training import ddp
from napari_zfocus.training.checkpoint import (
    checkpoint_path,
    config_differences,
    load_checkpoint,
    save_checkpoint,
)
from napari_zfocus.training.dataset_cache import (
    TrainingData,
    load_training_data,
    split_by_stack,
    validation_images,
)
from napari_zfocus.validation import check_choice, check_number

EVENT_KINDS = ("start", "step", "validation", "checkpoint", "done", "cancelled")
INITS = ("default", "paper")

# ---- Bounds of the training settings, in one place (checked by TrainConfig.validate).
#: Images per step and process: the widget's limit; more would not fit in memory anyway.
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
#: Seeds: numpy's generators and torch.manual_seed take any 32-bit unsigned integer.
TRAIN_MAX_SEED = 2**32 - 1
#: CPU threads.
TRAIN_MAX_THREADS = 1024


def _check_int(value: Any, name: str, lo: int, hi: int) -> int:
    """An integer (not a bool, a string or 2.5) in ``lo..hi``; the message names the field."""
    return int(check_number(value, name, lo=lo, hi=hi, integer=True, strict=True))


# --------------------------------------------------------------------------- settings
@dataclass
class TrainConfig:
    """How to train (the network itself is described by :class:`ModelConfig`).

    Budgets: training stops at ``steps`` optimiser steps or ``minutes`` of wall-clock
    time (counted from the start of the first run, data loading included), whichever
    comes first; the learning-rate schedule spans the same budget. Resuming continues
    towards the same budget: raise it to train longer.
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
        if self.threads is not None:
            _check_int(self.threads, "threads", 1, TRAIN_MAX_THREADS)
        check_choice(self.init, "init", INITS)
        for name in ("augment", "resume", "channels_last", "amp", "prefetch"):
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
    """One progress report of :func:`train` (plain data: safe to send between threads).

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
        :func:`regression_metrics`.
    checkpoint_path, model_path
        Files written (``checkpoint``, ``done``, ``cancelled``).
    message
        A line for humans (``start``: what is being trained on).
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


# --------------------------------------------------------------------------- helpers
def lr_at(progress: float, config: TrainConfig) -> float:
    """Learning rate at a fraction ``progress`` of the budget: linear warm-up, cosine decay."""
    p = min(max(progress, 0.0), 1.0)
    base, w = config.lr, config.warmup_fraction
    if w > 0 and p < w:
        return base * (0.05 + 0.95 * p / w)
    q = (p - w) / (1.0 - w) if w < 1 else 1.0
    final = base * config.final_lr_fraction
    return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * q))


def soft_targets(z_um: torch.Tensor, config: ModelConfig, sigma_um: float) -> torch.Tensor:
    """Target distribution over bins for true defocus ``z_um`` (N,) -> (N, n_bins).

    ``sigma_um == 0`` gives one-hot labels (the paper); otherwise a Gaussian of that width
    over the bin centres, renormalised.
    """
    centres = torch.as_tensor(config.bin_centres_um, dtype=torch.float32)
    z = z_um.to(torch.float32).clamp(config.z_min_um, config.z_max_um)
    if sigma_um <= 0:
        idx = torch.as_tensor(config.z_to_bin(z.numpy()))
        return F.one_hot(idx, config.n_bins).to(torch.float32)
    w = torch.exp(-0.5 * ((centres[None, :] - z[:, None]) / sigma_um) ** 2)
    return w / w.sum(dim=1, keepdim=True)


def regression_metrics(z_true: np.ndarray, z_pred: np.ndarray) -> dict[str, float]:
    """Error statistics of predicted defocus (um).

    Keys: ``median_abs_error_um``, ``mean_abs_error_um``, ``rmse_um``, ``within_1um``
    (fraction of images with ``|error| <= 1 um``), ``n_images``.
    """
    err = np.abs(np.asarray(z_pred, dtype=np.float64) - np.asarray(z_true, dtype=np.float64))
    if err.size == 0:
        return {}
    return {
        "median_abs_error_um": float(np.median(err)),
        "mean_abs_error_um": float(err.mean()),
        "rmse_um": float(np.sqrt((err**2).mean())),
        "within_1um": float((err <= 1.0 + 1e-9).mean()),
        "n_images": float(err.size),
    }


@torch.no_grad()
def predict_logits(net: nn.Module, x: torch.Tensor, device: torch.device,
                   chunk: int = 64, channels_last: bool = True) -> torch.Tensor:
    """Logits (float32, CPU) for prepared inputs ``x`` (N, 1, n, n), in chunks."""
    was_training = net.training
    net.eval()
    out = []
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk].to(device=device, dtype=torch.float32)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        out.append(net(xb).float().cpu())
    net.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def validation_metrics(
    logits: torch.Tensor, z_true: np.ndarray, config: ModelConfig
) -> dict[str, float]:
    """Metrics of the Predictor's readout, plus the paper's argmax readout.

    The main keys use :func:`napari_zfocus.model.readout.readout`'s local expected value
    (what ``Prediction.z_um`` reports, so validation measures what users get); the
    argmax (centre of the most probable bin) is reported as
    ``argmax_median_abs_error_um`` / ``argmax_within_1um``.
    """
    if len(logits) == 0:
        return {}
    p = torch.softmax(logits.double(), dim=1).numpy()
    r = readout(p, config.bin_centres_um)
    metrics = regression_metrics(z_true, r.z_um)
    arg = regression_metrics(z_true, r.z_argmax_um)
    metrics["argmax_median_abs_error_um"] = arg["median_abs_error_um"]
    metrics["argmax_within_1um"] = arg["within_1um"]
    return metrics


class _Prefetcher:
    """Prepares the batch of step k+1 in a background thread while step k computes.

    Batches are a pure function of the step number, so prefetching never changes results.
    """

    def __init__(self, make: Callable[[int], Any], first_step: int, enabled: bool) -> None:
        self._make = make
        self._next = first_step
        self._enabled = enabled
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._run, name="zfocus-prefetch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        step = self._next
        while not self._stop.is_set():
            try:
                item = (step, self._make(step), None)
            except BaseException as exc:  # noqa: BLE001 - hand any error to the training thread
                item = (step, None, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return
            step += 1

    def get(self, step: int) -> Any:
        """The batch of ``step`` (steps must be requested in order)."""
        if not self._enabled:
            return self._make(step)
        got, batch, exc = self._queue.get()
        if exc is not None:
            raise exc
        assert got == step, f"prefetcher out of order: {got} != {step}"
        return batch

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _as_dataset(dataset: Any) -> Any:
    if isinstance(dataset, (str, os.PathLike)):
        from napari_zfocus.data import read_dataset

        return read_dataset(dataset)
    return dataset


def _check_writable(out: Path) -> None:
    """Fail early (before minutes of training) if the model file cannot be written."""
    if out.is_dir():
        raise ZFocusError(f"{out}: is a folder; give a model file name such as model.zfm")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{out.name}.write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ZFocusError(
            f"{out}: cannot write the model file here ({exc.strerror or exc})"
        ) from None


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype
    return torch.autocast(device.type, enabled=False), None


# --------------------------------------------------------------------------- the loop
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
        yield from _train(_as_dataset(dataset), model_config, train_config, cancel, ctx,
                          device, t_start)
    finally:
        ddp.shutdown(ctx)


def _train(
    dataset: Any,
    mc: ModelConfig,
    tc: TrainConfig,
    cancel: CancelToken,
    ctx: ddp.DistContext,
    device: torch.device,
    t_start: float,
) -> Iterator[TrainEvent]:
    out = Path(tc.out)
    ckpt_file = checkpoint_path(out)
    if ctx.is_main:
        _check_writable(out)
    if device.type == "cpu":
        # Share the cores between torchrun's processes instead of oversubscribing them.
        torch.set_num_threads(tc.threads or max(1, (os.cpu_count() or 1) // ctx.local_world_size))

    # ---- resume state
    step, elapsed_before, schedule_t0 = 0, 0.0, None
    resumed: dict[str, Any] | None = None
    if tc.resume:
        resumed = load_checkpoint(ckpt_file)
        diff = config_differences(resumed["model_config"], mc)
        if diff:
            raise ModelFileError(
                f"{ckpt_file}: checkpoint was trained with a different model config "
                f"({'; '.join(diff)}); train without resume or choose another output"
            )
        step = int(resumed["step"])
        elapsed_before = float(resumed["elapsed_s"])
        schedule_t0 = resumed.get("schedule_t0_s")

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t_start

    # ---- data
    annotations = list(dataset.annotations)
    if not annotations:
        raise ZFocusError(f"{getattr(dataset, 'root', 'dataset')}: no annotated stacks")
    train_ann, val_ann = split_by_stack(annotations, tc.val_fraction, tc.seed)
    data: TrainingData = load_training_data(dataset, train_ann, mc)
    if len(data) == 0:
        raise ZFocusError(
            f"{getattr(dataset, 'root', 'dataset')}: no training slice lies inside the model's "
            f"z range {mc.z_min_um:g}..{mc.z_max_um:g} um"
        )
    if ctx.is_main and val_ann:
        val_x, val_z = validation_images(dataset, val_ann, mc, tc.val_max_images)
    else:
        val_x, val_z = torch.empty(0), np.empty(0)

    # ---- network and optimiser (same seed on every rank; DDP also broadcasts rank 0's)
    torch.manual_seed(tc.seed)
    net = build_network(mc)
    if tc.init == "paper":
        init_paper_weights(net)
    net.to(device)
    if tc.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    autocast, amp_dtype = _autocast(device, tc.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    last_metrics: dict[str, float] = {}
    if resumed is not None:
        net.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["optimizer"])
        if resumed.get("scaler"):
            scaler.load_state_dict(resumed["scaler"])
        last_metrics = dict(resumed.get("metrics") or {})
    model = ddp.wrap(net, ctx, device)

    budget_s = tc.minutes * 60.0 if tc.minutes is not None else None

    def progress(now: float) -> float:
        p = step / tc.steps if tc.steps else 0.0
        if budget_s is not None and schedule_t0 is not None:
            # The schedule spans the time left after data loading of the first run.
            p = max(p, (now - schedule_t0) / max(budget_s - schedule_t0, 1e-9))
        elif budget_s is not None:
            p = max(p, now / budget_s)
        return min(max(p, 0.0), 1.0)

    def make_batch(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([tc.seed, ctx.rank, k])
        x, z = data.sample(rng, tc.batch, augment=tc.augment)
        return x, soft_targets(z, mc, tc.label_sigma_um)

    def event(kind: str, **kw: Any) -> TrainEvent:
        now = elapsed()
        return TrainEvent(kind=kind, step=step, total_steps=tc.steps, progress=progress(now),
                          elapsed_s=now, **kw)

    def write_files(final: bool) -> tuple[str | None, str | None]:
        if not ctx.is_main:
            return None, None
        state = {
            "model": ddp.unwrap(model).state_dict(),
            "optimizer": opt.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "step": step,
            "elapsed_s": elapsed(),
            "schedule_t0_s": schedule_t0,
            "model_config": mc,
            "train_config": tc.to_dict(),
            "metrics": last_metrics,
            "torch_rng": torch.get_rng_state(),
        }
        save_checkpoint(ckpt_file, state)
        if not final:
            return str(ckpt_file), None
        from napari_zfocus.model.io import save_model

        meta = {
            "training": {
                "steps": step,
                "elapsed_s": round(elapsed(), 1),
                "images_seen": step * tc.batch * ctx.world_size,
                "world_size": ctx.world_size,
                "device": device.type,
                "dataset": str(getattr(dataset, "root", "")),
                "train_stacks": len(train_ann),
                "val_stacks": [str(a.stack) for a in val_ann],
                "train_config": tc.to_dict(),
                "validation": last_metrics,
                "cancelled": cancel.cancelled,
            }
        }
        save_model(out, ddp.unwrap(model), mc, metadata=meta)
        return str(ckpt_file), str(out)

    def run_validation() -> dict[str, float]:
        logits = predict_logits(ddp.unwrap(model), val_x, device, channels_last=tc.channels_last)
        return validation_metrics(logits, val_z, mc)

    yield event(
        "start",
        message=(
            f"{len(train_ann)} training stacks ({len(data)} images, "
            f"{data.nbytes / 2**20:.0f} MiB cached), {len(val_ann)} validation stacks "
            f"({len(val_z)} images); {mc.input_px} px input, {mc.n_bins} bins; "
            f"device {device}" + (f" x {ctx.world_size} processes" if ctx.distributed else "")
            + (f"; resumed at step {step}" if resumed is not None else "")
        ),
        metrics=dict(last_metrics),
    )

    prefetch = _Prefetcher(make_batch, step, enabled=tc.prefetch)
    model.train()
    ips: float | None = None
    loss_value: float | None = None
    last_ckpt_t = time.perf_counter()
    validated_at = -1
    try:
        while True:
            now, stop_cancel = ddp.agree(elapsed(), cancel.cancelled, ctx, device)
            if stop_cancel or progress(now) >= 1.0:
                break
            if schedule_t0 is None:
                schedule_t0 = now
            lr = lr_at(progress(now), tc)
            for group in opt.param_groups:
                group["lr"] = lr
            t0 = time.perf_counter()
            x, target = prefetch.get(step)
            x = x.to(device, non_blocking=True)
            if tc.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            target = target.to(device, non_blocking=True)
            # Dropout masks of step k depend on (seed, rank, k) only: exact resume.
            torch.manual_seed(hash((tc.seed, ctx.rank, step)) & 0x7FFF_FFFF_FFFF)
            with autocast:
                logits = model(x)
            loss = -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            loss_value = float(loss.item())
            if not math.isfinite(loss_value):
                raise ZFocusError(
                    f"{out}: training diverged (loss {loss_value}) at step {step + 1}; "
                    f"lower the learning rate (now {tc.lr:g})"
                )
            step += 1
            rate = tc.batch * ctx.world_size / max(time.perf_counter() - t0, 1e-9)
            ips = rate if ips is None else 0.9 * ips + 0.1 * rate
            yield event("step", loss=loss_value, lr=lr, images_per_s=ips)

            due_val = tc.validation_every and step % tc.validation_every == 0
            if ctx.is_main and len(val_z) and due_val:
                last_metrics = run_validation()
                validated_at = step
                yield event("validation", loss=loss_value, metrics=dict(last_metrics))
            due_steps = tc.checkpoint_every and step % tc.checkpoint_every == 0
            due_time = (
                tc.checkpoint_every_s
                and time.perf_counter() - last_ckpt_t >= tc.checkpoint_every_s
            )
            if ctx.is_main and (due_steps or due_time):
                ck, _ = write_files(final=False)
                last_ckpt_t = time.perf_counter()
                yield event("checkpoint", loss=loss_value, checkpoint_path=ck)
    finally:
        prefetch.close()

    cancelled = cancel.cancelled or not (progress(elapsed()) >= 1.0)
    if ctx.is_main and len(val_z) and not cancelled and validated_at != step:
        last_metrics = run_validation()
        yield event("validation", loss=loss_value, metrics=dict(last_metrics))
    ck, model_path = write_files(final=True)
    ddp.barrier(ctx)
    yield event(
        "cancelled" if cancelled else "done",
        loss=loss_value,
        images_per_s=ips,
        metrics=dict(last_metrics),
        checkpoint_path=ck,
        model_path=model_path,
    )
