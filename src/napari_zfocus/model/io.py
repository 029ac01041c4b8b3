"""Model files: one safetensors file with the weights and JSON metadata. Never pickle.

A model file (suggested extension ``.zfm``; any name works) holds

- the network's tensors (``state_dict``), in safetensors format: loading reads raw
  numbers and a JSON header, it can never execute code (unlike ``torch.save`` pickles);
- string metadata: ``format`` / ``format_version``, the :class:`ModelConfig` (architecture,
  z-bins, pixel size, field, normalisation), the bin centres, the versions of
  napari-zfocus and torch that wrote it, a free JSON ``metadata`` dict (training data
  summary, metrics...) supplied by the caller, and ``sha256``, an integrity hash.

Format versions: in version 2 (written now) ``sha256`` covers ALL the metadata (a
canonical JSON of every entry but itself) and the tensors, so an edit of either (``bin_um``
1 -> 2 um would double every reading) is refused. Version 1 files (still read) hashed the
tensors only; for them the metadata is checked against the tensors instead (number of
bins against the last layer, input size against the first fully connected layer, the
stored bin centres against the configuration). :func:`upgrade_model_file` rewrites a
version 1 file as version 2 with the very same stored tensors.

:func:`load_model` checks all of it (the rules: :mod:`.file_checks`) and raises
:class:`ModelFileError`, one line naming the file, for a missing, truncated, tampered,
foreign, inconsistent or too-new file.

Calibration (:mod:`.calibration`: temperature, event map, out-of-distribution reference)
is one more metadata entry, ``calibration``, covered by the version-2 hash like every
other; files without it load as uncalibrated, and a version-1 file holding one is refused
(its hash would not cover it). :func:`save_calibrated_copy` writes a model file with a
new calibration and the very same stored tensors. The ``distance_scale`` entry
(:mod:`.distance_scale`, the model's gain on a microscope measured from unannotated
stacks) is kept the same way; :func:`save_rescaled_copy` writes a new one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_zfocus import __version__
from napari_zfocus._atomic import atomic_path, write_errors_named
from napari_zfocus.errors import ZFocusError, describe
from napari_zfocus.model.calibration import Calibration
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.distance_scale import DistanceScale

# The format's name and versions, and the checks of a file's contents, live in
# .file_checks; the constants stay importable from here (their documented home).
from napari_zfocus.model.file_checks import (
    FORMAT_NAME,
    FORMAT_VERSION,
    WEIGHTS_ONLY_HASH_VERSION,  # noqa: F401 - importable from here, as before
    check_consistency,
    check_integrity,
    format_version,
    parse_calibration,
    parse_distance_scale,
    parse_header,
)
from napari_zfocus.model.file_checks import file_error as _fail
from napari_zfocus.model.model_hash import integrity_digest as _integrity_digest

# Re-exported for the tests' writer of version-1 files (tests/_model_files.py).
from napari_zfocus.model.model_hash import tensor_digest as _tensor_digest  # noqa: F401
from napari_zfocus.model.network import build_network

MODEL_SUFFIX = ".zfm"

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MODEL_SUFFIX",
    "LoadedModel",
    "load_model",
    "read_model_info",
    "save_calibrated_copy",
    "save_model",
    "save_rescaled_copy",
    "upgrade_model_file",
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
        ``torch_version``, ``created_utc``, ``sha256``, ``calibrated``,
        ``distance_scale`` (its gain, or ``None``).
    path
        Where it was loaded from.
    calibration
        The model's :class:`~.calibration.Calibration`, or ``None`` (uncalibrated).
    distance_scale
        The model's :class:`~.distance_scale.DistanceScale` on the microscope it is used
        at, or ``None`` (it reads distances as trained).
    """

    net: nn.Module
    config: ModelConfig
    metadata: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    path: Path | None = None
    calibration: Calibration | None = None
    distance_scale: DistanceScale | None = None


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


def _write(target: Path, tensors: dict[str, torch.Tensor], header: dict[str, str]) -> Path:
    """Seal ``header`` (current format version and integrity hash) and write atomically."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    header = dict(header, format=FORMAT_NAME, format_version=str(FORMAT_VERSION))
    header.pop("sha256", None)
    header["sha256"] = _integrity_digest(header, tensors)
    # safetensors reports a failed write (disk full, file-size limit) as SafetensorError.
    with write_errors_named(target, "model file", SafetensorError), \
            atomic_path(target) as tmp:
        save_file(tensors, os.fspath(tmp), metadata=header)
    return target


def save_model(
    path: str | os.PathLike[str],
    net: nn.Module,
    config: ModelConfig,
    metadata: dict | None = None,
    *,
    weights_dtype: torch.dtype | None = None,
    calibration: Calibration | None = None,
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
    calibration
        The model's calibration (fitted on held-out stacks), or ``None``.

    Returns
    -------
    Path
        ``path``.
    """
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
    config.validate()  # never write a file that load_model would refuse
    header = {
        "config": json.dumps(config.to_dict()),
        "bin_centres_um": json.dumps(config.bin_centres_um.tolist()),
        "metadata": meta_json,
        "napari_zfocus_version": __version__,
        "torch_version": torch.__version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if calibration is not None:
        header["calibration"] = _calibration_entry(path, calibration)
    return _write(Path(path), tensors, header)


def _calibration_entry(path: str | os.PathLike[str], calibration: Calibration) -> str:
    try:
        return json.dumps(calibration.to_dict(), default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ZFocusError(describe(path, f"cannot save the calibration: {exc}")) from None


def save_rescaled_copy(
    path: str | os.PathLike[str], scale: DistanceScale | None,
    out: str | os.PathLike[str] | None = None,
) -> Path:
    """Rewrite a model file with the distance scale ``scale`` (``None``: without one), as
    :func:`upgrade_model_file` does: checked first, tensors and other entries kept."""
    try:
        entry = (None if scale is None else
                 json.dumps(scale.to_dict(), default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ZFocusError(describe(path, f"cannot save the distance scale: {exc}")) from None
    return upgrade_model_file(path, out, distance_scale_entry=entry)


def save_calibrated_copy(
    path: str | os.PathLike[str], calibration: Calibration | None,
    out: str | os.PathLike[str] | None = None,
) -> Path:
    """Rewrite a model file with ``calibration`` (``None``: without one), as
    :func:`upgrade_model_file` does: checked first, tensors and other entries kept."""
    entry = None if calibration is None else _calibration_entry(path, calibration)
    return upgrade_model_file(path, out, calibration_entry=entry)


def upgrade_model_file(
    path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
    calibration_entry: str | None = "keep",
    distance_scale_entry: str | None = "keep",
) -> Path:
    """Rewrite a model file in the current format, after checking it completely.

    The stored tensors (float16 ones included) are written back bit for bit and every
    metadata entry is kept (``created_utc`` and the versions that trained it too); only
    ``format_version`` and ``sha256`` change, so the new file's hash covers the metadata.

    Parameters
    ----------
    path
        A model file of any readable format version.
    out
        Where to write; default ``path`` itself (replaced atomically).
    calibration_entry, distance_scale_entry
        ``"keep"`` the stored entry, or the new entry's JSON (``None``: remove it).

    Raises
    ------
    ModelFileError
        ``path`` does not load (see :func:`load_model`).
    """
    src = Path(path)
    load_model(src)  # every check first: never re-seal a tampered file
    meta, handle = _read_header(src)
    tensors = _read_tensors(src, handle)
    for key, entry in (("calibration", calibration_entry),
                       ("distance_scale", distance_scale_entry)):
        if entry != "keep":
            meta.pop(key, None)
            if entry is not None:
                meta[key] = entry
    return _write(Path(out) if out is not None else src, tensors, meta)


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
    """Open the safetensors file; return (metadata, open handle)."""
    from safetensors import safe_open

    if not path.exists():
        raise _fail(path, "no such model file")
    if not path.is_file():
        raise _fail(path, "not a file")
    try:
        kind = _sniff(path)
    except OSError as exc:
        raise _fail(path, f"cannot read the model file ({exc.strerror or exc})") from None
    try:
        # Safe on any input: safetensors only parses a length-prefixed JSON header.
        handle = safe_open(os.fspath(path), framework="pt", device="cpu")
        meta = handle.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError...: any unreadable header
        # Only now name the magic bytes, for a clearer message (a safetensors header
        # length can itself start with any byte, so trusting the sniff first would misfire).
        if kind is not None:
            raise _fail(
                path,
                f"is {kind}, not a napari-zfocus model file; refusing to load it "
                "(pickles can run arbitrary code)",
            ) from None
        reason = " ".join(str(exc).split())[:200]  # one line, whatever the library says
        raise _fail(path, f"not a napari-zfocus model file or truncated ({reason})") from None
    return meta, handle


def _read_tensors(path: Path, handle: Any) -> dict[str, torch.Tensor]:
    try:
        # safe_open handles have keys() but are not iterable.
        return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # noqa: BLE001 - truncated data section, a dtype torch lacks
        reason = " ".join(str(exc).split())[:200]
        raise _fail(path, f"cannot read weights, file truncated or corrupt ({reason})") from None


def read_model_info(path: str | os.PathLike[str]) -> tuple[ModelConfig, dict, dict]:
    """Read (config, metadata, info) from a model file without loading the weights.

    Only the header is checked (format, version, configuration); :func:`load_model`
    also verifies the integrity hash and the weights.
    """
    p = Path(path)
    meta, _handle = _read_header(p)
    return parse_header(p, meta)


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Load a model file written by :func:`save_model`. Never executes code from the file.

    Raises
    ------
    ModelFileError
        Missing, truncated or foreign file (pickle, zip...), unknown or newer format
        version, metadata or weights modified since writing (integrity hash), invalid
        configuration, metadata that contradicts the weights, missing/unexpected
        tensors, wrong shapes or dtypes, non-finite weights, an invalid calibration or
        distance scale.
    """
    p = Path(path)
    meta, handle = _read_header(p)
    version = format_version(p, meta)
    tensors = _read_tensors(p, handle)
    # The hash first: an edited file is named as such, whatever the edit broke.
    check_integrity(p, version, meta, tensors)
    config, user_meta, info = parse_header(p, meta)
    check_consistency(p, meta, config, tensors)
    calibration = parse_calibration(p, meta, version, config)
    distance_scale = parse_distance_scale(p, meta, version)
    net = build_network(config)
    expected = net.state_dict()
    tensors = {name: t.to(expected[name].dtype) for name, t in tensors.items()}
    net.load_state_dict(tensors, strict=True)
    net.eval()
    info["path"] = os.fspath(p)
    info["distance_scale"] = None if distance_scale is None else distance_scale.gain
    return LoadedModel(net=net, config=config, metadata=user_meta, info=info, path=p,
                       calibration=calibration, distance_scale=distance_scale)
