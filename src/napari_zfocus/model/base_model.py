"""The packaged base models, and what a "start from" choice (a base's word or a file) names.

The base model (``resources/base_model.zfm``, the word ``base``: the compact CNN)
is trained on the simulator's broad mix of samples, optics and cameras; fine-tuning
(``zfocus train --from base``, the training dock's "start from") and the annotation dock's
suggestions start from it. The feature network has its own base on the same stacks
(``resources/base_features_model.zfm``, the word ``base-features``). A release ships them;
a checkout may not have them yet, and then every use of one is a one-line error that says
so, not a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from napari_zfocus.errors import ModelFileError

__all__ = [
    "BASE_FEATURES_SPEC",
    "BASE_MODEL",
    "BASE_MODELS",
    "BASE_SPEC",
    "base_model_installed",
    "base_model_path",
    "resolve_start_model",
]

#: Where the packaged base model lives (provided by the release, not by training here).
BASE_MODEL = Path(__file__).resolve().parent.parent / "resources" / "base_model.zfm"
#: The word that names the base model wherever a model file can be given to start from.
BASE_SPEC = "base"
#: The word that names the feature network's base model.
BASE_FEATURES_SPEC = "base-features"
#: Every base model: its word -> its file's name, beside :data:`BASE_MODEL`.
BASE_MODELS = {
    BASE_SPEC: BASE_MODEL.name,
    BASE_FEATURES_SPEC: "base_features_model.zfm",
}


def _base_file(spec: str) -> Path:
    # Read BASE_MODEL at call time: tests and packagers point it elsewhere.
    return BASE_MODEL if spec == BASE_SPEC else BASE_MODEL.with_name(BASE_MODELS[spec])


def base_model_path(spec: str = BASE_SPEC) -> Path:
    """Path of the packaged base model ``spec`` names (``base``, ``base-features``).

    Raises
    ------
    ModelFileError
        ``"base model not installed: <path> is missing; ..."`` when the package has none.
    """
    path = _base_file(spec)
    if not path.is_file():
        raise ModelFileError(
            f"base model not installed: {path} is missing; start from scratch or from "
            "a model file (--from MODEL.zfm)"
        )
    return path


def base_model_installed(spec: str = BASE_SPEC) -> bool:
    """Whether the packaged base model ``spec`` names is present (for enabling the docks'
    choices)."""
    return _base_file(spec).is_file()


def resolve_start_model(spec: str | os.PathLike[str]) -> Path:
    """The model file a start choice names: a base's word (:data:`BASE_MODELS`) or the
    path of a model file.

    Only says where the file is (and that something is there); loading it checks the rest
    (:func:`napari_zfocus.model.io.load_model`).

    Raises
    ------
    ModelFileError
        The base model is not installed, or the named file does not exist.
    """
    text = os.fspath(spec)
    if text in BASE_MODELS:
        return base_model_path(text)
    if not text.strip():
        raise ModelFileError("start model: give 'base', 'base-features' or a model file")
    path = Path(text)
    if not path.exists():  # anything else there: the loader says what is wrong with it
        raise ModelFileError(f"{path}: no such model file to start from")
    return path
