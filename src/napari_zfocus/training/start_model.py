"""The model a training run starts from (fine-tuning): its weights, its settings, its record.

``TrainConfig.start_from`` names it: ``"base"`` (the packaged base model,
:mod:`napari_zfocus.model.base_model`) or a model file. It is loaded with every check of
:func:`napari_zfocus.model.io.load_model` (a tampered, truncated or foreign file is a
one-line :class:`~napari_zfocus.errors.ModelFileError`); the run keeps its architecture,
z-bins and input setting (:class:`ModelConfig`), and the model file it writes records
where it started (:attr:`StartModel.record`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.base_model import BASE_MODELS, resolve_start_model
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.training.checkpoint import config_differences

__all__ = ["StartModel", "load_start_model", "same_start"]


@dataclass
class StartModel:
    """A loaded start model.

    Attributes
    ----------
    spec
        ``"base"`` or the model file as given.
    path
        The file it was loaded from.
    config
        Its :class:`ModelConfig` (the run's, necessarily).
    weights
        Its state dict (float32, CPU).
    record
        What the trained model's metadata says about it: ``spec``, ``file`` (name),
        ``path``, ``sha256``, ``format_version``, ``napari_zfocus_version``,
        ``created_utc`` and its training dataset when it says one.
    """

    spec: str
    path: Path
    config: ModelConfig
    weights: dict[str, torch.Tensor]
    record: dict[str, Any]

    def check_config(self, config: ModelConfig) -> None:
        """Refuse a run whose model settings are not the start model's.

        Raises
        ------
        ZFocusError
            ``"<start file>: ... (bin_um 1.0 != 2.0; ...)"``: naming every difference.
        """
        diff = config_differences(self.config, config)
        if diff:
            raise ZFocusError(
                f"{self.path}: fine-tuning keeps the start model's architecture, bins and "
                f"input, but the run asks for other settings ({'; '.join(diff)})"
            )


def load_start_model(spec: str) -> StartModel:
    """Load the model ``spec`` names (``"base"`` or a model file), with every check.

    Raises
    ------
    ModelFileError
        The base model is not installed; the file is missing, unreadable, tampered with
        or not a napari-zfocus model.
    """
    from napari_zfocus.model.io import load_model

    path = resolve_start_model(spec)
    loaded = load_model(path)
    info = loaded.info
    training = loaded.metadata.get("training")
    trained_on = training.get("dataset") if isinstance(training, dict) else None
    record = {
        "spec": spec if spec in BASE_MODELS else str(path),
        "file": path.name,
        "path": str(path),
        "sha256": info.get("sha256"),
        "format_version": info.get("format_version"),
        "napari_zfocus_version": info.get("napari_zfocus_version"),
        "created_utc": info.get("created_utc"),
        "trained_on": trained_on,
    }
    weights = {k: v.detach().clone() for k, v in loaded.net.state_dict().items()}
    return StartModel(str(spec), path, loaded.config, weights, record)


def same_start(record: dict[str, Any], spec: str) -> bool:
    """Whether ``spec`` names the model a run started from (``record``: its
    :attr:`StartModel.record`): the same name, or a file with the same contents (hash)."""
    from napari_zfocus.model.io import read_model_info

    named = spec if spec in BASE_MODELS else str(Path(spec))
    if named == record.get("spec"):
        return True  # without opening it: a resume needs the checkpoint, not the file
    digest = read_model_info(resolve_start_model(spec))[2].get("sha256")
    return bool(record.get("sha256")) and digest == record.get("sha256")
