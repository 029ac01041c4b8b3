"""How the network's forward pass runs on its device: autocast, cuDNN autotuning, compile.

:class:`~napari_zfocus.model.inference.Predictor` runs every forward pass inside
:func:`autocast` (float16 on CUDA, with cuDNN picking the fastest convolutions only while
it runs; full precision on the CPU) and can replace its network by :func:`compile_network`'s
``torch.compile`` graph. None of these leaves a process-wide torch setting changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["autocast", "compile_network", "cudnn_benchmark"]


@contextlib.contextmanager
def cudnn_benchmark() -> Iterator[None]:
    """Let cuDNN pick the fastest convolution for our fixed input shapes, only while we
    run, restoring the process's setting afterwards (no lasting global change)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """Float16 autocast on CUDA, with cuDNN autotuning for the forward pass only."""
    if device.type == "cuda":
        with cudnn_benchmark(), torch.autocast("cuda", dtype=torch.float16):
            yield
    else:
        with torch.autocast("cpu", enabled=False):
            yield


def compile_network(net: nn.Module, device: torch.device, input_px: int) -> Any:
    """``torch.compile(net)``, compiled now for one ``(1, 1, input_px, input_px)`` image.

    The first call compiles, so a failure shows here, not in the live loop.

    Raises
    ------
    Exception
        Whatever ``torch.compile`` or the first compiled call raises (no compiler, an
        unsupported platform...); the caller falls back to eager mode.
    """
    compiled = torch.compile(net, dynamic=False)
    dummy = torch.zeros((1, 1, input_px, input_px), device=device)
    with torch.inference_mode(), autocast(device):
        compiled(dummy.contiguous(memory_format=torch.channels_last))
    return compiled
