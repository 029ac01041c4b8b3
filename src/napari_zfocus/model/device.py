"""Which torch device to compute on: one parser for every command, widget and script.

A device is named ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda``,
``cuda:N`` or ``mps``. Anything else, a CUDA device on a machine without CUDA, or an index
past the number of GPUs is refused with one line naming the setting, before any work and
before torch could raise its own multi-line error deep inside a run.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from napari_zfocus.errors import ZFocusError

if TYPE_CHECKING:
    import torch

#: What the user may write, for the messages.
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"

# At most 4 index digits: no machine has 10 000 GPUs, and a longer number is a typo.
_DEVICE_RE = re.compile(r"(auto|cpu|mps|cuda)(?::(\d{1,4}))?")

__all__ = ["DEVICE_CHOICES", "available_cores", "check_device", "device_name", "resolve_device"]


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def device_name(text: Any, name: str = "device") -> str:
    """Check the FORM of a device name and return it normalised; needs no torch.

    The command line parses ``--device`` with this (``zfocus simulate`` must not import
    torch); :func:`check_device` adds whether this machine has the device.

    Raises
    ------
    ZFocusError
        Not one of :data:`DEVICE_CHOICES`.
    """
    if text is None:
        return "auto"
    spec = text.strip().lower() if isinstance(text, str) else None
    match = _DEVICE_RE.fullmatch(spec) if spec is not None else None
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise ZFocusError(f"{name} must be {DEVICE_CHOICES}, got {text!r}")
    return f"{match[1]}:{int(match[2])}" if match[2] is not None else match[1]


def check_device(text: Any, name: str = "device") -> str:
    """Validate a device name and return it normalised (``"auto"``, ``"cuda:1"``...).

    Returns a string, so it can be stored in JSON settings.

    Parameters
    ----------
    text
        ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (any case), a ``torch.device``,
        or ``None`` (= ``auto``).
    name
        What the user calls the setting (``"--device"``, ``"device"``): it starts the message.

    Raises
    ------
    ZFocusError
        Unknown name, or a GPU that this machine does not have.
    """
    import torch

    if isinstance(text, torch.device):
        text = str(text)
    spec = device_name(text, name)
    kind, _, index = spec.partition(":")
    if kind == "mps" and not _mps_available():
        raise ZFocusError(f"{name} {text!r}: no Apple GPU (MPS) on this machine; use cpu or auto")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ZFocusError(
                f"{name} {text!r}: CUDA is not available on this machine; use cpu or auto"
            )
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise ZFocusError(
                f"{name} {text!r}: this machine has {count} CUDA device(s), "
                f"cuda:0..cuda:{count - 1}"
            )
    return spec


def resolve_device(text: Any, name: str = "device") -> torch.device:
    """The ``torch.device`` that a device name means here (``auto`` decided now).

    ``cuda`` without an index stays index-less (the current GPU; under ``torchrun`` the
    training picks one per local rank).

    Raises
    ------
    ZFocusError
        As :func:`check_device`.
    """
    import torch

    spec = check_device(text, name)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def available_cores() -> int:
    """CPU cores this process may use (respects affinity masks / containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)
