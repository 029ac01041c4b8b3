"""Models that read distances as at a reference condenser aperture.

Why. Beyond a micrometre or two from focus a bright-field image shows the cells' phase
blurred by a disc whose radius is the defocus times the condenser (Koehler) aperture: the
image tells ``z * NA_c``, not ``z`` (README, "Beyond our own simulator";
``benchmarks/aperture_bound.py``). Trained on stacks of several apertures with their true
distances as labels, a network can only learn a blurred average over the apertures (59-65 %
within +/-1 um on the waveorder world as drawn). Trained instead on ``z * NA_c / NA_ref``,
with ``NA_c`` each stack's aperture (the ``condenser_na`` column of ``annotations.csv``) and
``NA_ref`` the model's ``reference_condenser_na``, every stack teaches the same scale, and
on a microscope at aperture ``NA_c`` the readings are divided by the gain ``NA_c / NA_ref``:
a :class:`~.distance_scale.DistanceScale`, the very gain ``zfocus rescale`` otherwise
measures from z-stacks.

Torch-free: the training data, the evaluation and ``zfocus rescale`` all use it.
"""

from __future__ import annotations

from typing import Any

from napari_zfocus.bounds import CONDENSER_NA
from napari_zfocus.errors import DatasetError, ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.distance_scale import GAIN_RANGE, DistanceScale
from napari_zfocus.validation import check_number

__all__ = [
    "CONDENSER_NA_COLUMN",
    "aperture_distance_scale",
    "label_scale",
    "predictor_at_stack_aperture",
    "stack_condenser_na",
]

#: The ``annotations.csv`` column holding a stack's condenser aperture (our simulator and
#: the benchmark worlds write it).
CONDENSER_NA_COLUMN = "condenser_na"


def stack_condenser_na(annotation: Any, source: Any = "annotations.csv") -> float | None:
    """The stack's condenser aperture from its ``condenser_na`` column (None: not given).

    Raises
    ------
    DatasetError
        The value is not a number in :data:`napari_zfocus.bounds.CONDENSER_NA`, naming
        ``source`` and the stack.
    """
    text = str(getattr(annotation, "extra", {}).get(CONDENSER_NA_COLUMN, "")).strip()
    if not text:
        return None
    try:
        return float(check_number(text, CONDENSER_NA_COLUMN, lo=CONDENSER_NA[0],
                                  hi=CONDENSER_NA[1]))
    except ZFocusError:
        raise DatasetError(
            f"{source}: {annotation.stack}: {CONDENSER_NA_COLUMN} {text!r} is not a condenser "
            f"aperture (a number in {CONDENSER_NA[0]:g}..{CONDENSER_NA[1]:g})"
        ) from None


def label_scale(config: ModelConfig, annotation: Any, source: Any = "annotations.csv") -> float:
    """Factor from a stack's true distances to the model's units: ``NA_c / NA_ref`` for a
    model with a reference aperture, else 1.

    Raises
    ------
    DatasetError
        The model has a reference aperture and the stack no (valid) ``condenser_na``.
    """
    reference = config.reference_condenser_na
    if reference is None:
        return 1.0
    na = stack_condenser_na(annotation, source)
    if na is None:
        raise DatasetError(
            f"{source}: {annotation.stack}: no {CONDENSER_NA_COLUMN}; the model reads "
            f"distances as at condenser aperture {reference:g}, so every stack needs its "
            f"aperture in a {CONDENSER_NA_COLUMN} column (a model of true distances needs "
            "none: train one from scratch without --reference-condenser-na)"
        )
    return na / reference


def aperture_distance_scale(config: ModelConfig, condenser_na: float,
                            model: Any = "model") -> DistanceScale:
    """The model's distance scale on a microscope at ``condenser_na``.

    Raises
    ------
    ZFocusError
        The model has no reference aperture (naming ``model``), or the aperture is out of
        range or too far from the reference (a gain outside :data:`GAIN_RANGE`).
    """
    reference = config.reference_condenser_na
    if reference is None:
        raise ZFocusError(
            f"{model}: was trained without a reference condenser aperture "
            "(--reference-condenser-na), so an aperture cannot set its scale; rescale it "
            "from z-stacks of the microscope instead"
        )
    na = float(check_number(condenser_na, "condenser aperture", lo=CONDENSER_NA[0],
                            hi=CONDENSER_NA[1]))
    gain = na / reference
    if not GAIN_RANGE[0] <= gain <= GAIN_RANGE[1]:
        raise ZFocusError(
            f"{model}: condenser aperture {na:g} is {gain:.2f}x its reference {reference:g}; "
            f"it reads apertures {GAIN_RANGE[0] * reference:.2f}..{GAIN_RANGE[1] * reference:.2f}"
        )
    return DistanceScale(gain, {"source": "condenser aperture", "condenser_na": na,
                                "reference_condenser_na": reference})


def predictor_at_stack_aperture(predictor: Any, annotation: Any,
                                source: Any = "annotations.csv") -> Any:
    """``predictor`` on the stack's microscope: for a model with a reference aperture and a
    stack whose ``condenser_na`` is given, a copy reading distances at that aperture (the
    network shared, not copied); otherwise ``predictor`` itself, with its own scale.

    Raises
    ------
    DatasetError, ZFocusError
        A bad ``condenser_na``; an aperture too far from the reference.
    """
    config = predictor.config
    if getattr(config, "reference_condenser_na", None) is None:
        return predictor
    na = stack_condenser_na(annotation, source)
    if na is None:
        return predictor
    try:
        scale = aperture_distance_scale(config, na, f"{source}: {annotation.stack}")
    except ZFocusError as exc:
        raise DatasetError(str(exc)) from None
    return predictor.with_distance_scale(scale)
