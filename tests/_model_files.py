"""Write and tamper with model files the way an old version or a hostile user would.

Shared by tests/model/test_io.py, tests/reliability/_bad_models.py and the hostile model
file tests in tests/reliability.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import FORMAT_NAME, _integrity_digest, _tensor_digest


def write_v1_model(path: Path, net: torch.nn.Module, config: ModelConfig,
                   metadata: dict | None = None) -> Path:
    """A model file as napari-zfocus 0.1 wrote it: format version 1, whose ``sha256``
    covers the tensors only (the writer of that version, kept here verbatim)."""
    tensors = {k: t.detach().cpu().contiguous().clone() for k, t in net.state_dict().items()}
    header = {
        "format": FORMAT_NAME,
        "format_version": "1",
        "config": json.dumps(config.to_dict()),
        "bin_centres_um": json.dumps(config.bin_centres_um.tolist()),
        "metadata": json.dumps(metadata or {}),
        "napari_zfocus_version": "0.1.0",
        "torch_version": torch.__version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sha256": _tensor_digest(tensors),
    }
    save_file(tensors, str(path), metadata=header)
    return Path(path)


def read_raw(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The header entries and the stored tensors of a model file, as stored."""
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def rewrite_model(src: Path, dst: Path, *, tensors: dict | None = None,
                  settings: dict | None = None, reseal: str | None = None,
                  drop: tuple[str, ...] = (), **meta_changes: str) -> Path:
    """Copy a model file with edits, as a tamperer would.

    Parameters
    ----------
    tensors
        Replacement tensors (default: the stored ones).
    settings
        Changes merged into the stored configuration JSON (``config=`` replaces the
        whole entry with a string, like any other header entry).
    reseal
        ``None``: keep the stored hash (a naive edit); ``"v1"``: recompute a version-1
        weights-only hash and claim version 1; ``"v2"``: recompute the full hash (an
        attacker who knows the scheme: only the content checks can catch that).
    drop
        Header entries to remove.
    meta_changes
        Header entries to set (strings).
    """
    meta, data = read_raw(src)
    if tensors is not None:
        data = tensors
    if settings is not None:
        meta["config"] = json.dumps(dict(json.loads(meta["config"]), **settings))
    meta.update(meta_changes)
    for key in drop:
        meta.pop(key, None)
    if reseal == "v1":
        meta["format_version"] = "1"
        meta["sha256"] = _tensor_digest(data)
    elif reseal == "v2":
        meta.pop("sha256", None)
        meta["sha256"] = _integrity_digest(meta, data)
    save_file(data, str(dst), metadata=meta)
    return Path(dst)
