"""DistributedDataParallel plumbing for the training loop.

The same :func:`napari_zfocus.training.loop.train` runs as one process or under
``torchrun`` (``torchrun --nproc_per_node 2 -m napari_zfocus.cli train ...``): when the
``WORLD_SIZE`` / ``RANK`` environment variables say so, the process group is joined
(gloo on CPU, nccl on GPU), every rank draws its own batches (seed mixed with the rank,
the equivalent of a DistributedSampler for random sampling), gradients are averaged by
DDP, and only rank 0 validates and writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    """Where this process stands in a (possibly single-process) training job."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1
    initialised_here: bool = False

    @property
    def distributed(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that validates, prints and writes files."""
        return self.rank == 0


def env_context() -> DistContext:
    """Read torchrun's environment variables (no process group is started)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return DistContext(world, rank, local_rank, local_world)


def choose_device(preference: str, ctx: DistContext) -> torch.device:
    """``'auto'`` -> CUDA when present (one GPU per local rank), else CPU.

    Raises :class:`~napari_zfocus.errors.ZFocusError` for an unknown or absent device
    (:func:`napari_zfocus.model.device.resolve_device`).
    """
    from napari_zfocus.model.device import resolve_device

    device = resolve_device(preference, "device")
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", ctx.local_rank % max(1, torch.cuda.device_count()))
    return device


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group if torchrun started us; a no-op for a single process."""
    ctx = env_context()
    if ctx.world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        return ctx
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=ctx.rank, world_size=ctx.world_size)
    ctx.initialised_here = True
    return ctx


def wrap(net: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """Wrap ``net`` in DistributedDataParallel when distributed (weights of rank 0 win)."""
    if not ctx.distributed:
        return net
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=ids)


def unwrap(net: nn.Module) -> nn.Module:
    """The plain network inside a DDP wrapper (what is saved and validated)."""
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def agree(
    elapsed_s: float, stop: bool, ctx: DistContext, device: torch.device
) -> tuple[float, bool]:
    """Rank 0's elapsed time and "any rank wants to stop", on every rank, in one all-reduce.

    Ranks must agree on both: a time-driven learning rate that differed between ranks
    would make their weights drift apart, and a rank that stopped alone would leave the
    others waiting forever in the next gradient all-reduce.
    """
    if not ctx.distributed:
        return elapsed_s, stop
    t = torch.tensor(
        [float(elapsed_s) if ctx.is_main else 0.0, 1.0 if stop else 0.0],
        dtype=torch.float64 if device.type == "cpu" else torch.float32,
        device=device,
    )
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t[0].item()), bool(t[1].item() > 0)


def barrier(ctx: DistContext) -> None:
    """Wait for all ranks (e.g. while rank 0 writes a checkpoint)."""
    if ctx.distributed:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    """Leave the process group if this module joined it."""
    if ctx.initialised_here and dist.is_initialized():
        dist.destroy_process_group()
        ctx.initialised_here = False
