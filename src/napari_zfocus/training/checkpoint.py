"""Training checkpoints: everything needed to resume a run exactly, never plain pickle.

A checkpoint is a ``torch.save`` of a dict of state dicts, numbers and JSON strings, read
back with ``torch.load(weights_only=True)``, which refuses to build arbitrary Python
objects (a checkpoint from somewhere else cannot run code). It lives next to the model
file as ``<model>.ckpt`` and is written atomically, so a kill during a write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from napari_zfocus._atomic import atomic_path, write_errors_named
from napari_zfocus.errors import ModelFileError, ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.state_check import parameter_shapes, state_dict_problem
from napari_zfocus.validation import check_number

CHECKPOINT_FORMAT = "napari-zfocus-checkpoint"
CHECKPOINT_VERSION = 1
#: Bounds of the counters: 1e12 steps or 1e10 s (300 years) are edits, not training runs.
MAX_STEP = 10**12
MAX_SECONDS = 1e10


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

    Raises
    ------
    ZFocusError
        ``"<path>: cannot write the checkpoint (<cause>)"`` when the write fails (disk
        full, file-size limit); the previous checkpoint is then untouched.
    """
    payload = dict(state)
    payload["format"] = CHECKPOINT_FORMAT
    payload["version"] = CHECKPOINT_VERSION
    payload["model_config"] = json.dumps(state["model_config"].to_dict())
    for key in ("train_config", "metrics", "best", "start_model"):
        if key in payload:
            payload[key] = json.dumps(payload[key])
    path = Path(path)
    # torch's zip writer reports a short write (disk full, file-size limit) as RuntimeError.
    with write_errors_named(path, "checkpoint", RuntimeError), atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors land on the CPU).

    Everything is checked before it is returned, so resuming cannot fail later with a
    torch traceback: format and version, ``step`` and times, the model configuration,
    the model state's names and shapes against that configuration, the optimiser state
    against the network's parameters, the JSON settings and metrics.

    Returns
    -------
    dict
        As saved, with ``model_config`` a :class:`ModelConfig` and ``train_config`` /
        ``metrics`` plain dicts.

    Raises
    ------
    ModelFileError
        ``"<path>: <problem>"``: missing, unreadable, not a checkpoint, from a newer
        version, or any entry damaged or inconsistent.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no checkpoint found")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file, expected a checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt, truncated, or objects we refuse to build
        raise ModelFileError(
            f"{path}: not a readable checkpoint ({type(exc).__name__})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path}: not a napari-zfocus checkpoint")
    version = state.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > CHECKPOINT_VERSION:
        raise ModelFileError(
            f"{path}: checkpoint version {version} is newer than this napari-zfocus "
            f"reads (<= {CHECKPOINT_VERSION}); upgrade napari-zfocus"
        )
    try:
        _check_number(version, "version", 1, CHECKPOINT_VERSION, integer=True)
        _validate(state)
    except ZFocusError as exc:
        raise ModelFileError(f"{path}: damaged checkpoint ({exc})") from None
    return state


def _check_number(value: Any, name: str, lo: float, hi: float, *, integer: bool = False) -> Any:
    return check_number(value, name, lo=lo, hi=hi, integer=integer, strict=True)


def _json_dict(state: dict[str, Any], key: str) -> dict:
    """Decode a JSON-string entry that must hold an object (``{}`` when absent)."""
    text = state.get(key, "{}")
    if not isinstance(text, str):
        raise ZFocusError(f"{key} must be a JSON string, got {type(text).__name__}")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise ZFocusError(f"{key} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ZFocusError(f"{key} must be a JSON object, got {type(value).__name__}")
    return value


def _validate(state: dict[str, Any]) -> None:
    """Check every entry in place (decoding the JSON ones); raise ZFocusError naming it."""
    if "model_config" not in state:
        raise ZFocusError("no model configuration")
    state["model_config"] = ModelConfig.from_dict(_json_dict(state, "model_config"))
    config: ModelConfig = state["model_config"]
    _check_number(state.get("step"), "step", 0, MAX_STEP, integer=True)
    _check_number(state.get("elapsed_s"), "elapsed_s", 0, MAX_SECONDS)
    if state.get("schedule_t0_s") is not None:
        _check_number(state["schedule_t0_s"], "schedule_t0_s", 0, MAX_SECONDS)
    if "model" not in state:
        raise ZFocusError("no model state")
    problem = state_dict_problem(state["model"], config)
    if problem is not None:
        raise ZFocusError(f"model state: {problem}")
    _check_optimizer(state.get("optimizer"), parameter_shapes(config))
    scaler = state.get("scaler", {})
    if not isinstance(scaler, dict):
        raise ZFocusError("scaler state must be a dict")
    for key, value in scaler.items():
        _check_number(value, f"scaler {key}", -MAX_SECONDS, MAX_SECONDS)
    rng = state.get("torch_rng")
    if rng is not None and not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8):
        raise ZFocusError("torch_rng must be a byte tensor")
    state["train_config"] = _json_dict(state, "train_config")
    state["metrics"] = _check_metrics(_json_dict(state, "metrics"), "metric")
    _validate_best(state, config)
    state["start_model"] = _json_dict(state, "start_model")


def _check_metrics(metrics: dict, what: str) -> dict:
    for key, value in metrics.items():
        # NaN is a legitimate metric value (json writes it), a string or a list is not.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ZFocusError(f"{what} {key!r} must be a number, got {value!r}")
    return metrics


def _validate_best(state: dict[str, Any], config: ModelConfig) -> None:
    """The best validation so far (early stopping) and its weights, when saved."""
    best = _json_dict(state, "best")
    if best.get("step") is not None:
        _check_number(best["step"], "best step", 0, MAX_STEP, integer=True)
    for key in ("metrics", "start_metrics"):
        if not isinstance(best.get(key, {}), dict):
            raise ZFocusError(f"best {key} must be a JSON object")
        _check_metrics(best.get(key, {}), f"best {key}")
    state["best"] = best
    if state.get("best_model") is not None:
        problem = state_dict_problem(state["best_model"], config)
        if problem is not None:
            raise ZFocusError(f"best model state: {problem}")


def _same_kind(saved: Any, fresh: Any) -> bool:
    """Whether an optimiser hyper-parameter read from a file has the type torch expects."""
    if isinstance(fresh, bool) or fresh is None:
        return saved is None or isinstance(saved, bool)
    if isinstance(fresh, (int, float)):
        if isinstance(saved, torch.Tensor) and saved.numel() == 1:
            saved = float(saved)
        return (isinstance(saved, (int, float)) and not isinstance(saved, bool)
                and math.isfinite(saved))
    if isinstance(fresh, tuple):
        return (isinstance(saved, (tuple, list)) and len(saved) == len(fresh)
                and all(_same_kind(a, b) for a, b in zip(saved, fresh, strict=True)))
    return True


def _check_optimizer(opt: Any, shapes: list[tuple[int, ...]]) -> None:
    """The Adam state of one parameter group over exactly the network's parameters."""
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) \
            or not isinstance(opt.get("param_groups"), list):
        raise ZFocusError("optimizer state missing or not an optimizer state dict")
    groups = opt["param_groups"]
    if len(groups) != 1 or not isinstance(groups[0], dict) \
            or groups[0].get("params") != list(range(len(shapes))):
        raise ZFocusError(f"optimizer state does not cover the network's {len(shapes)} parameters")
    fresh = torch.optim.Adam([torch.zeros(1)]).state_dict()["param_groups"][0]
    for key, value in groups[0].items():
        if key != "params" and key in fresh and not _same_kind(value, fresh[key]):
            raise ZFocusError(f"optimizer setting {key!r} has an invalid value {value!r}")
    for index, entry in opt["state"].items():
        if not (isinstance(index, int) and 0 <= index < len(shapes) and isinstance(entry, dict)):
            raise ZFocusError(f"optimizer state entry {index!r} is invalid")
        for name, value in entry.items():
            if not isinstance(value, torch.Tensor):
                raise ZFocusError(f"optimizer state {index}.{name} is not a tensor")
            if value.dim() > 0 and tuple(value.shape) != shapes[index]:
                raise ZFocusError(
                    f"optimizer state {index}.{name} has shape {tuple(value.shape)}, "
                    f"expected {shapes[index]}"
                )
            if value.dtype.is_floating_point and not bool(torch.isfinite(value).all()):
                raise ZFocusError(f"optimizer state {index}.{name} is not finite")


def config_differences(a: ModelConfig, b: ModelConfig) -> list[str]:
    """Human-readable ``name: a != b`` for every setting in which two configs differ."""
    da, db = a.to_dict(), b.to_dict()
    return [f"{k} {da.get(k)!r} != {db.get(k)!r}" for k in sorted(set(da) | set(db))
            if da.get(k) != db.get(k)]
