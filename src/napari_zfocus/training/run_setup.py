"""What a training run starts with: output check, resume state or start model, data, network.

The data is checked against the model and split into training and validation stacks
before a single image is read.

:meth:`napari_zfocus.training.trainer.Trainer.create` calls these in order; every refusal
happens here, before the first optimiser step, as one line naming the file or the flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_zfocus.errors import ModelFileError, ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.network import build_network, init_paper_weights
from napari_zfocus.training.checkpoint import config_differences, load_checkpoint
from napari_zfocus.training.data_plan import DataPlan, check_dataset_fits, plan_stacks
from napari_zfocus.training.dataset_cache import (
    TrainingData,
    load_training_data,
    validation_images,
)
from napari_zfocus.training.start_model import StartModel, load_start_model, same_start
from napari_zfocus.training.train_config import TrainConfig

__all__ = [
    "RunData",
    "RunNetwork",
    "build_run_network",
    "check_writable",
    "load_run_data",
    "read_resume",
    "read_start",
]


def check_writable(out: Path) -> None:
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


def read_resume(ckpt_file: Path, mc: ModelConfig, tc: TrainConfig) -> dict[str, Any]:
    """The checkpoint to resume from.

    Resume wins over ``start_from``: the checkpoint's weights continue. A start model
    that is not the one the checkpoint's run started from is refused (it would be
    silently ignored otherwise).

    Raises
    ------
    ModelFileError
        The checkpoint is for another network, or from a run with another start.
    """
    resumed = load_checkpoint(ckpt_file)
    diff = config_differences(resumed["model_config"], mc)
    if diff:
        raise ModelFileError(
            f"{ckpt_file}: checkpoint was trained with a different model config "
            f"({'; '.join(diff)}); train without resume or choose another output"
        )
    start = resumed.get("start_model") or {}
    if tc.start_from is not None and not (start and same_start(start, tc.start_from)):
        began = f"started from {start.get('spec')}" if start else "started from scratch"
        raise ModelFileError(
            f"{ckpt_file}: its run {began}, not from {tc.start_from}; resume continues "
            "the checkpoint (leave the start model out), or train afresh (overwrite)"
        )
    return resumed


def read_start(tc: TrainConfig, mc: ModelConfig, resumed: bool) -> StartModel | None:
    """The start model of a fresh run (``None`` from scratch or on resume), checked
    against the run's model settings."""
    if tc.start_from is None or resumed:
        return None
    start = load_start_model(tc.start_from)
    start.check_config(mc)
    return start


def _autocast(device: torch.device, enabled: bool) -> tuple[Any, torch.dtype | None]:
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype
    return torch.autocast(device.type, enabled=False), None


@dataclass
class RunData:
    """The cached training images, the validation images and how they were chosen."""

    train: TrainingData
    plan: DataPlan
    val_x: torch.Tensor
    val_z: np.ndarray

    @property
    def train_ann(self) -> list[Any]:
        """Annotations of the training stacks."""
        return self.plan.train

    @property
    def val_ann(self) -> list[Any]:
        """Annotations of the validation stacks (the training ones when too few)."""
        return self.plan.val


def load_run_data(dataset: Any, mc: ModelConfig, tc: TrainConfig, is_main: bool) -> RunData:
    """Check the dataset against the model (headers only), split the stacks, cache the
    training slices, prepare the validation images."""
    root = getattr(dataset, "root", "dataset")
    annotations = list(dataset.annotations)
    if not annotations:
        raise ZFocusError(f"{root}: no annotated stacks")
    check_dataset_fits(dataset, annotations, mc)
    plan = plan_stacks(annotations, tc)
    data = load_training_data(dataset, plan.train, mc)
    if len(data) == 0:
        raise ZFocusError(
            f"{root}: no training slice lies inside the model's "
            f"z range {mc.z_min_um:g}..{mc.z_max_um:g} um"
        )
    if is_main and plan.val:
        val_x, val_z = validation_images(dataset, plan.val, mc, tc.val_max_images)
    else:
        val_x, val_z = torch.empty(0), np.empty(0)
    return RunData(data, plan, val_x, val_z)


@dataclass
class RunNetwork:
    """The network, its optimiser and the mixed-precision helpers."""

    net: nn.Module
    opt: torch.optim.Optimizer
    scaler: Any
    autocast: Any


def build_run_network(
    mc: ModelConfig, tc: TrainConfig, device: torch.device,
    resumed: dict[str, Any] | None, start: StartModel | None,
) -> RunNetwork:
    """Same seed on every rank (DDP also broadcasts rank 0's); a resume loads its state,
    a start model its weights (with a fresh optimiser)."""
    torch.manual_seed(tc.seed)
    net = build_network(mc)
    if start is not None:
        net.load_state_dict(start.weights)
    elif tc.init == "paper":
        init_paper_weights(net)
    net.to(device)
    if tc.channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.Adam(net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    autocast, amp_dtype = _autocast(device, tc.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    if resumed is not None:
        net.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["optimizer"])
        if resumed.get("scaler"):
            scaler.load_state_dict(resumed["scaler"])
    return RunNetwork(net, opt, scaler, autocast)
