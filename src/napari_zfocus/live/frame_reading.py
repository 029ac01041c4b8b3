"""What the focus controller reads from one frame: the model's estimate, or why there is none.

Kept apart from :mod:`~napari_zfocus.live.controller` (which decides and moves) so the
frame checks (shape, NaN pixels, blank frames) and the model's verdict (non-finite,
bimodal, out of distribution, low confidence) are one small function with no stage in
sight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from napari_zfocus.live.controller_settings import (
    BIMODAL,
    BLANK_FRAME,
    CAMERA_ERROR,
    LOW_CONFIDENCE,
    MODEL_ERROR,
    OUT_OF_DISTRIBUTION,
    PREDICTION_NAN,
    ControllerSettings,
    PredictorLike,
)
from napari_zfocus.live.microscope import Frame

__all__ = ["Estimate", "metadata_float", "read_frame"]


@dataclass
class Estimate:
    """The model's reading of one frame: sample z (um), confidence, a bimodal flag and
    whether the model found the frame out of distribution."""

    z_um: float
    confidence: float
    bimodal: bool
    ood: bool = False


def metadata_float(frame: Frame, key: str) -> float:
    """A number from the frame metadata (nan when absent or garbled: a camera adapter's
    metadata is free-form and must never crash the loop)."""
    try:
        return float(frame.metadata.get(key, math.nan))
    except (AttributeError, TypeError, ValueError):
        return math.nan


def read_frame(
    frame: Frame, predictor: PredictorLike, pixel_size_um: float, settings: ControllerSettings
) -> tuple[Estimate | None, str | None, str]:
    """Run the model on a frame: (estimate, hold/failure reason or None, message).

    A reason in :data:`~napari_zfocus.live.controller_settings.FAILURES` counts towards the
    safe stop; the others only hold. Never raises: a failing model is a ``MODEL_ERROR``.
    """
    image = np.asarray(frame.image)
    if image.ndim != 2 or image.size == 0:
        return None, CAMERA_ERROR, f"frame has shape {image.shape}, expected (Y, X)"
    finite_range = float(np.ptp(image)) if np.issubdtype(image.dtype, np.integer) else None
    if finite_range is None:
        if not np.all(np.isfinite(image)):
            return None, CAMERA_ERROR, "frame contains NaN or infinite pixels"
        finite_range = float(np.ptp(image))
    if finite_range == 0:
        return None, BLANK_FRAME, "all pixels are equal"
    try:
        pred = predictor.predict(image, pixel_size_um)
    except Exception as exc:  # noqa: BLE001 - a failing model is a failure, not a crash
        return None, MODEL_ERROR, f"{type(exc).__name__}: {exc}"
    z = float(getattr(pred, "z_um", math.nan))
    conf = float(getattr(pred, "confidence", math.nan))
    est = Estimate(z, conf, bool(getattr(pred, "bimodal", False)),
                   bool(getattr(pred, "ood", False)))
    if not (math.isfinite(z) and math.isfinite(conf)):
        return est, PREDICTION_NAN, "model returned a non-finite estimate"
    if est.bimodal and settings.hold_on_bimodal:
        return est, BIMODAL, "two competing focal planes"
    if est.ood and settings.hold_on_ood:
        score = float(getattr(pred, "ood_score", math.nan))
        return est, OUT_OF_DISTRIBUTION, (
            f"frame unlike the model's training images at {z:+.1f} um "
            f"(OOD score {score:.1f} > 1)")
    if conf < settings.min_confidence:
        floor = settings.min_confidence
        return est, LOW_CONFIDENCE, f"confidence {conf:.2f} < {floor:.2f}"
    return est, None, ""
