"""The packaged base model, and what a "start from" choice (``base`` or a file) names.

The base model (``resources/base_model.zfm``) is trained on the simulator's broad mix of
samples, optics and cameras; fine-tuning (``zfocus train --from base``, the training
dock's "start from") and the annotation dock's suggestions start from it. A release
ships it; a checkout may not have it yet, and then every use of it is a one-line error
that says so, not a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from napari_zfocus.errors import ModelFileError

__all__ = [
    "BASE_MODEL",
    "BASE_SPEC",
    "base_model_installed",
    "base_model_path",
    "resolve_start_model",
]

#: Where the packaged base model lives (provided by the release, not by training here).
BASE_MODEL = Path(__file__).resolve().parent.parent / "resources" / "base_model.zfm"
#: The word that names the base model wherever a model file can be given to start from.
BASE_SPEC = "base"


def base_model_path() -> Path:
    """Path of the packaged base model.

    Raises
    ------
    ModelFileError
        ``"base model not installed: <path> is missing; ..."`` when the package has none.
    """
    path = BASE_MODEL
    if not path.is_file():
        raise ModelFileError(
            f"base model not installed: {path} is missing; start from scratch or from "
            "a model file (--from MODEL.zfm)"
        )
    return path


def base_model_installed() -> bool:
    """Whether the packaged base model is present (for enabling the docks' choices)."""
    return BASE_MODEL.is_file()


def resolve_start_model(spec: str | os.PathLike[str]) -> Path:
    """The model file a start choice names: ``"base"`` or the path of a model file.

    Only says where the file is (and that something is there); loading it checks the rest
    (:func:`napari_zfocus.model.io.load_model`).

    Raises
    ------
    ModelFileError
        The base model is not installed, or the named file does not exist.
    """
    text = os.fspath(spec)
    if text == BASE_SPEC:
        return base_model_path()
    if not text.strip():
        raise ModelFileError("start model: give 'base' or a model file")
    path = Path(text)
    if not path.exists():  # anything else there: the loader says what is wrong with it
        raise ModelFileError(f"{path}: no such model file to start from")
    return path
