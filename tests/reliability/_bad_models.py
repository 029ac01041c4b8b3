"""Shared by test_bad_model_files.py and test_bad_model_settings.py: the valid files that
the hostile cases start from, and a model file's tensors to edit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import torch

from _model_files import read_raw, write_v1_model
from _tiny import TINY, write_noise_dataset
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import save_model
from napari_zfocus.model.network import build_network


def write_model_files(d: Path) -> dict[str, Path]:
    """A valid tiny model (current and version 1 format), an image and a dataset in D."""
    torch.manual_seed(0)
    config = ModelConfig(**TINY)
    net = build_network(config).eval()
    image = d / "image.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 4000, (60, 60), np.uint16))
    return {
        "dir": d,
        "model": save_model(d / "good.zfm", net, config, {"note": "valid"}),
        "v1": write_v1_model(d / "good_v1.zfm", net, config, {"note": "valid v1"}),
        "image": image,
        "dataset": write_noise_dataset(d / "ds", 2, (11, 56, 56), focus_index=5),
    }


def _state(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in read_raw(path)[1].items()}
