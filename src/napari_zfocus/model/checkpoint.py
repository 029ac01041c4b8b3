"""Training checkpoints: everything needed to resume a run exactly, never plain pickle.

A checkpoint is a ``torch.save`` of a dict of state dicts, numbers and JSON strings, read
back with ``torch.load(weights_only=True)``, which refuses to build arbitrary Python
objects (a checkpoint from somewhere else cannot run code). It lives next to the model
file as ``<model>.ckpt`` and is written atomically, so a kill during a write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from napari_zfocus._atomic import atomic_path
from napari_zfocus.errors import ModelFileError, ZFocusError
from napari_zfocus.model.config import ModelConfig

CHECKPOINT_FORMAT = "napari-zfocus-checkpoint"
CHECKPOINT_VERSION = 1


def checkpoint_path(model_path: str | Path) -> Path:
    """The checkpoint that belongs to a model file: ``<model>.ckpt``."""
    p = Path(model_path)
    return p.with_name(p.name + ".ckpt")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a checkpoint atomically.

    Parameters
    ----------
    path
        Destination file.
    state
        Must hold ``model`` and ``optimizer`` state dicts, ``step``, and ``model_config``
        (:class:`ModelConfig`); other entries must be tensors, numbers, strings or
        containers of those. Dict-valued settings are stored as JSON strings.
    """
    payload = dict(state)
    payload["format"] = CHECKPOINT_FORMAT
    payload["version"] = CHECKPOINT_VERSION
    payload["model_config"] = json.dumps(state["model_config"].to_dict())
    for key in ("train_config", "metrics"):
        if key in payload:
            payload[key] = json.dumps(payload[key])
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors land on the CPU).

    Returns
    -------
    dict
        As saved, with ``model_config`` a :class:`ModelConfig` and ``train_config`` /
        ``metrics`` plain dicts.

    Raises
    ------
    ModelFileError
        Missing, unreadable, not a checkpoint, or from a newer version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no checkpoint found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or holding objects we refuse to build
        raise ModelFileError(
            f"{path}: not a readable checkpoint ({type(exc).__name__})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path}: not a napari-zfocus checkpoint")
    if int(state.get("version", 0)) > CHECKPOINT_VERSION:
        raise ModelFileError(
            f"{path}: checkpoint version {state['version']} is newer than this napari-zfocus"
        )
    try:
        state["model_config"] = ModelConfig.from_dict(json.loads(state["model_config"]))
        for key in ("train_config", "metrics"):
            if key in state:
                state[key] = json.loads(state[key])
    except (KeyError, TypeError, ValueError, ZFocusError) as exc:
        raise ModelFileError(f"{path}: damaged checkpoint ({exc})") from None
    return state


def config_differences(a: ModelConfig, b: ModelConfig) -> list[str]:
    """Human-readable ``name: a != b`` for every setting in which two configs differ."""
    da, db = a.to_dict(), b.to_dict()
    return [f"{k} {da.get(k)!r} != {db.get(k)!r}" for k in sorted(set(da) | set(db))
            if da.get(k) != db.get(k)]
