"""What a model file must satisfy to load: format and version, hash, metadata against weights.

The rules :func:`napari_zfocus.model.io.load_model` applies to a file's safetensors header
(string metadata) and tensors, each failure one :class:`ModelFileError` line naming the
file:

- :func:`format_version`: ours (``format``), and a version this napari-zfocus reads;
- :func:`check_integrity`: the ``sha256`` entry (version 2: over every metadata entry and
  the tensors; version 1: over the tensors only);
- :func:`parse_header`: the :class:`ModelConfig`, the caller's metadata and the file facts;
- :func:`check_consistency`: what a version-1 hash cannot vouch for (bin centres against
  the configuration, tensors against the network it describes);
- :func:`parse_calibration` and :func:`parse_distance_scale`: the optional
  ``calibration`` and ``distance_scale`` entries.

Reading and writing the file itself is :mod:`.io`'s job; the format's name and version
live here because these checks enforce them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_zfocus import __version__
from napari_zfocus.errors import ModelFileError, ZFocusError, describe
from napari_zfocus.model.calibration import Calibration
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.distance_scale import DistanceScale
from napari_zfocus.model.model_hash import integrity_digest, tensor_digest
from napari_zfocus.model.state_check import state_dict_problem

FORMAT_NAME = "napari-zfocus-model"
FORMAT_VERSION = 2
#: Version 1: the same layout, with ``sha256`` over the tensors only.
WEIGHTS_ONLY_HASH_VERSION = 1
#: Storage dtypes accepted for floating-point weights (cast to the network's dtype on load).
STORAGE_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "STORAGE_FLOAT_DTYPES",
    "WEIGHTS_ONLY_HASH_VERSION",
    "check_consistency",
    "check_integrity",
    "file_error",
    "format_version",
    "json_entry",
    "parse_calibration",
    "parse_distance_scale",
    "parse_header",
]


def file_error(path: Path, problem: str) -> ModelFileError:
    """The error for ``problem`` with the model file ``path``: one line naming the file."""
    return ModelFileError(describe(path, problem))


def format_version(path: Path, meta: dict[str, str]) -> int:
    """The file's format version, refusing foreign, unknown and newer files."""
    if meta.get("format") != FORMAT_NAME:
        raise file_error(path, "not a napari-zfocus model file (no napari-zfocus metadata)")
    text = meta.get("format_version", "")
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) < 10):
        raise file_error(path, f"bad format version {text!r}")
    version = int(text)
    if version > FORMAT_VERSION:
        raise file_error(
            path,
            f"model format version {version} is newer than this napari-zfocus "
            f"({__version__}) reads (<= {FORMAT_VERSION}); upgrade napari-zfocus",
        )
    if version < WEIGHTS_ONLY_HASH_VERSION:
        raise file_error(path, f"unknown model format version {version}")
    return version


def json_entry(path: Path, meta: dict[str, str], key: str, default: str | None = None) -> Any:
    """The metadata entry ``key`` parsed as JSON (``default`` when absent, if given)."""
    text = meta.get(key, default)
    if text is None:
        raise file_error(path, f"model file has no {key} entry")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise file_error(path, f"corrupt {key} entry ({exc.msg})") from None
    except RecursionError:  # absurdly nested JSON
        raise file_error(path, f"corrupt {key} entry (nested too deeply)") from None


def parse_header(path: Path, meta: dict[str, str]) -> tuple[ModelConfig, dict, dict]:
    """(config, the caller's metadata, file facts) from the header, checked."""
    version = format_version(path, meta)
    try:
        config = ModelConfig.from_dict(json_entry(path, meta, "config"))
    except ModelFileError:
        raise
    except ZFocusError as exc:
        raise file_error(path, f"invalid model configuration: {exc}") from None
    user_meta = json_entry(path, meta, "metadata", "{}")
    if not isinstance(user_meta, dict):
        raise file_error(path, "corrupt metadata entry (not a JSON object)")
    info = {
        "format_version": version,
        "napari_zfocus_version": meta.get("napari_zfocus_version"),
        "torch_version": meta.get("torch_version"),
        "created_utc": meta.get("created_utc"),
        "sha256": meta.get("sha256"),
        "calibrated": "calibration" in meta,
    }
    return config, user_meta, info


def parse_calibration(path: Path, meta: dict[str, str], version: int,
                      config: ModelConfig) -> Calibration | None:
    """The ``calibration`` entry, checked; ``None`` for an uncalibrated model."""
    if "calibration" not in meta:
        return None
    if version < 2:
        raise file_error(path, "a format version 1 file cannot hold a calibration (its hash "
                               "would not cover it)")
    try:
        return Calibration.from_dict(json_entry(path, meta, "calibration"), config.n_bins)
    except ModelFileError:
        raise
    except ZFocusError as exc:
        raise file_error(path, f"invalid calibration: {exc}") from None


def parse_distance_scale(path: Path, meta: dict[str, str], version: int,
                         ) -> DistanceScale | None:
    """The ``distance_scale`` entry, checked; ``None`` for a model read as trained."""
    if "distance_scale" not in meta:
        return None
    if version < 2:
        raise file_error(path, "a format version 1 file cannot hold a distance scale (its "
                               "hash would not cover it)")
    try:
        return DistanceScale.from_dict(json_entry(path, meta, "distance_scale"))
    except ModelFileError:
        raise
    except ZFocusError as exc:
        raise file_error(path, f"invalid distance scale: {exc}") from None


def check_integrity(path: Path, version: int, meta: dict[str, str],
                    tensors: dict[str, torch.Tensor]) -> None:
    """Version 2: one hash over metadata and tensors. Version 1: over the tensors only."""
    digest = meta.get("sha256")
    try:
        if version >= 2:
            ok = digest == integrity_digest(meta, tensors)
        else:  # old files: a missing digest was allowed; the consistency checks remain
            ok = not digest or digest == tensor_digest(tensors)
    except Exception:  # noqa: BLE001 - a tensor that cannot be viewed as bytes: not ours
        ok = False
    if not ok:
        raise file_error(path, "integrity check failed: metadata or weights were modified")


def check_consistency(path: Path, meta: dict[str, str], config: ModelConfig,
                      tensors: dict[str, torch.Tensor]) -> None:
    """Metadata against tensors: what the hash of a version-1 file cannot vouch for."""
    centres = json_entry(path, meta, "bin_centres_um")
    try:
        stored = np.asarray(centres, dtype=np.float64)
    except (TypeError, ValueError):
        raise file_error(path, "corrupt bin_centres_um entry (not a list of numbers)") from None
    want = config.bin_centres_um
    if stored.shape != want.shape or not np.allclose(stored, want, rtol=0, atol=1e-6):
        raise file_error(
            path,
            f"metadata inconsistent: the stored bin centres do not match bin_um "
            f"{config.bin_um:g} over z {config.z_min_um:g}..{config.z_max_um:g} um",
        )
    problem = state_dict_problem(tensors, config, storage_dtypes=STORAGE_FLOAT_DTYPES)
    if problem is not None:
        raise file_error(path, problem)
