"""Integrity hashes of model files (see :mod:`.io` for the format versions).

Version 1 files hash the tensors only (:func:`tensor_digest`); version 2 files hash every
metadata entry and the tensors together (:func:`integrity_digest`), so an edit of either
is detected.
"""

from __future__ import annotations

import hashlib
import json

import torch

__all__ = ["integrity_digest", "tensor_digest"]

#: Domain separation of the version-2 integrity hash (no other hash can collide with it).
_INTEGRITY_TAG = b"napari-zfocus-model integrity v2\n"


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes, in sorted order (detects edits)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        # view as bytes: works for every dtype, including ones numpy lacks (bfloat16)
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def integrity_digest(header: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """Version-2 hash: SHA-256 over a canonical JSON of every metadata entry except
    ``sha256`` itself, then the tensors' digest. Any edit of either changes it."""
    meta = {k: v for k, v in header.items() if k != "sha256"}
    canonical = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    h = hashlib.sha256(_INTEGRITY_TAG)
    h.update(canonical.encode("ascii"))
    h.update(b"\n" + tensor_digest(tensors).encode("ascii"))
    return h.hexdigest()
