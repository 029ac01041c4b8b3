"""Write a trained model as a shipped one: float16 weights, where it came from in metadata.

Shared by ``make_demo_model.py`` and ``make_base_model.py``; the calibration (if any)
travels with the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from napari_zfocus.model.io import load_model, save_model


def ship(model: Path, out: Path, key: str, made_by: str, **facts: Any) -> None:
    """Store ``model`` at ``out`` in half precision with ``metadata[key]`` saying its origin."""
    loaded = load_model(model)
    metadata = dict(loaded.metadata)
    metadata[key] = {"made_by": made_by, "source_model": model.name, "weights": "float16",
                     **facts}
    save_model(out, loaded.net, loaded.config, metadata, weights_dtype=torch.float16,
               calibration=loaded.calibration)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
