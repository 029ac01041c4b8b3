"""Model files: one safetensors file with the weights and JSON metadata. Never pickle.

A model file (suggested extension ``.zfm``; any name works) holds

- the network's tensors (``state_dict``), in safetensors format: loading reads raw
  numbers and a JSON header, it can never execute code (unlike ``torch.save`` pickles);
- string metadata: ``format`` / ``format_version``, the :class:`ModelConfig` (architecture,
  z-bins, pixel size, field, normalisation), the bin centres, the versions of
  napari-zfocus and torch that wrote it, a SHA-256 of the tensors, and a free JSON
  ``metadata`` dict (training data summary, metrics...) supplied by the caller.

:func:`load_model` checks all of it and raises :class:`ModelFileError` naming the file
for a missing, truncated, tampered, foreign or too-new file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_zfocus import __version__
from napari_zfocus._atomic import atomic_path
from napari_zfocus.errors import ModelFileError, ZFocusError, describe
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.network import build_network

FORMAT_NAME = "napari-zfocus-model"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".zfm"

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MODEL_SUFFIX",
    "LoadedModel",
    "save_model",
    "load_model",
    "read_model_info",
]


@dataclass
class LoadedModel:
    """A network rebuilt from a model file, in eval mode on the CPU.

    Attributes
    ----------
    net
        The network with the file's weights.
    config
        Its :class:`ModelConfig`.
    metadata
        The caller's metadata dict given to :func:`save_model` (training summary, metrics).
    info
        File-level facts: ``format_version``, ``napari_zfocus_version``,
        ``torch_version``, ``created_utc``, ``sha256``.
    path
        Where it was loaded from.
    """

    net: nn.Module
    config: ModelConfig
    metadata: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    path: Path | None = None


def _json_default(obj: Any) -> Any:
    """Make numpy scalars/arrays, paths and tensors JSON-serialisable."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in model metadata")


def _tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes, in sorted order (detects edits)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        # view as bytes: works for every dtype, including ones numpy lacks (bfloat16)
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


#: Storage dtypes accepted for floating-point weights (cast to the network's dtype on load).
_STORAGE_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def save_model(
    path: str | os.PathLike[str],
    net: nn.Module,
    config: ModelConfig,
    metadata: dict | None = None,
    *,
    weights_dtype: torch.dtype | None = None,
) -> Path:
    """Write ``net``'s weights, ``config`` and ``metadata`` to one file, atomically.

    Parameters
    ----------
    path
        Target file (``.zfm`` suggested). Parent folders are created.
    net
        The network (any device; a ``torch.compile`` or DDP wrapper is unwrapped).
    config
        The configuration the network was built from.
    metadata
        JSON-serialisable dict (numpy values are converted), e.g. training data summary
        and validation metrics.
    weights_dtype
        Store floating-point weights in this dtype (``torch.float16`` halves the file, e.g.
        for the shipped demo model); they are cast back to float32 on load.

    Returns
    -------
    Path
        ``path``.
    """
    from safetensors.torch import save_file

    module = getattr(net, "_orig_mod", net)  # torch.compile wrapper
    module = getattr(module, "module", module)  # DistributedDataParallel wrapper
    tensors = {
        name: t.detach().to("cpu").contiguous().clone() for name, t in module.state_dict().items()
    }
    if weights_dtype is not None:
        tensors = {
            name: t.to(weights_dtype) if t.dtype.is_floating_point else t
            for name, t in tensors.items()
        }
    try:
        meta_json = json.dumps(metadata or {}, default=_json_default, allow_nan=True)
    except TypeError as exc:
        raise ZFocusError(describe(path, f"cannot save model metadata: {exc}")) from None
    header = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(config.to_dict()),
        "bin_centres_um": json.dumps(config.bin_centres_um.tolist()),
        "metadata": meta_json,
        "napari_zfocus_version": __version__,
        "torch_version": torch.__version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sha256": _tensor_digest(tensors),
    }
    target = Path(path)
    with atomic_path(target) as tmp:
        save_file(tensors, os.fspath(tmp), metadata=header)
    return target


def _fail(path: Path, problem: str) -> ModelFileError:
    return ModelFileError(describe(path, problem))


def _sniff(path: Path) -> str | None:
    """Name a well-known non-safetensors format from the first bytes, for a clear error."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK\x03\x04"):
        return "a zip/torch.save archive"
    if head[:1] == b"\x80":
        return "a Python pickle"
    return None


def _read_header(path: Path) -> tuple[dict[str, str], Any]:
    """Open the safetensors file; return (metadata, open handle context)."""
    from safetensors import safe_open

    if not path.exists():
        raise _fail(path, "no such model file")
    if not path.is_file():
        raise _fail(path, "not a file")
    try:
        # Safe on any input: safetensors only parses a length-prefixed JSON header.
        handle = safe_open(os.fspath(path), framework="pt", device="cpu")
    except Exception as exc:  # SafetensorError, OSError...: any unreadable header
        # Only now look at the magic bytes, for a clearer message (a safetensors header
        # length can itself start with any byte, so sniffing first would misfire).
        kind = _sniff(path)
        if kind is not None:
            raise _fail(
                path,
                f"is {kind}, not a napari-zfocus model file; refusing to load it "
                "(pickles can run arbitrary code)",
            ) from None
        raise _fail(path, f"not a napari-zfocus model file or truncated ({exc})") from None
    return handle.metadata() or {}, handle


def _parse_header(path: Path, meta: dict[str, str]) -> tuple[ModelConfig, dict, dict]:
    if meta.get("format") != FORMAT_NAME:
        raise _fail(path, "not a napari-zfocus model file (no napari-zfocus metadata)")
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise _fail(path, f"bad format version {meta.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise _fail(
            path,
            f"model format version {version} is newer than this napari-zfocus "
            f"({__version__}) reads (<= {FORMAT_VERSION}); upgrade napari-zfocus",
        )
    if version < 1:
        raise _fail(path, f"unknown model format version {version}")
    try:
        config = ModelConfig.from_dict(json.loads(meta["config"]))
        user_meta = json.loads(meta.get("metadata", "{}"))
    except KeyError:
        raise _fail(path, "model file has no configuration") from None
    except json.JSONDecodeError as exc:
        raise _fail(path, f"corrupt metadata ({exc.msg})") from None
    except (ZFocusError, TypeError, ValueError) as exc:
        raise _fail(path, f"invalid model configuration: {exc}") from None
    if not isinstance(user_meta, dict):
        raise _fail(path, "corrupt metadata (not a JSON object)")
    info = {
        "format_version": version,
        "napari_zfocus_version": meta.get("napari_zfocus_version"),
        "torch_version": meta.get("torch_version"),
        "created_utc": meta.get("created_utc"),
        "sha256": meta.get("sha256"),
    }
    return config, user_meta, info


def read_model_info(path: str | os.PathLike[str]) -> tuple[ModelConfig, dict, dict]:
    """Read (config, metadata, info) from a model file without loading the weights."""
    p = Path(path)
    meta, _handle = _read_header(p)
    return _parse_header(p, meta)


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Load a model file written by :func:`save_model`. Never executes code from the file.

    Raises
    ------
    ModelFileError
        Missing, truncated or foreign file (pickle, zip...), unknown or newer format
        version, invalid configuration, missing/unexpected tensors, wrong shapes or
        dtypes, non-finite weights, or tensors that do not match the stored checksum.
    """
    p = Path(path)
    meta, handle = _read_header(p)
    config, user_meta, info = _parse_header(p, meta)
    try:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as exc:  # truncated data section
        raise _fail(p, f"cannot read weights, file truncated or corrupt ({exc})") from None

    net = build_network(config)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise _fail(
            p,
            f"weights do not match the {config.architecture} network "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})",
        )
    for name, ref in expected.items():
        t = tensors[name]
        if tuple(t.shape) != tuple(ref.shape):
            raise _fail(
                p, f"tensor {name!r} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}"
            )
        # Floating weights may be stored at reduced precision (cast back after the checksum).
        if t.dtype != ref.dtype and not (
            ref.dtype.is_floating_point and t.dtype in _STORAGE_FLOAT_DTYPES
        ):
            raise _fail(p, f"tensor {name!r} has dtype {t.dtype}, expected {ref.dtype}")
        if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
            raise _fail(p, f"tensor {name!r} contains NaN or infinite weights")
    digest = meta.get("sha256")
    if digest and _tensor_digest(tensors) != digest:
        raise _fail(p, "weights do not match the stored checksum (file modified or corrupt)")
    tensors = {name: t.to(expected[name].dtype) for name, t in tensors.items()}
    net.load_state_dict(tensors, strict=True)
    net.eval()
    info["path"] = os.fspath(p)
    return LoadedModel(net=net, config=config, metadata=user_meta, info=info, path=p)
