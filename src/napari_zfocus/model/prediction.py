"""What the model reads from one image: :class:`Prediction`, and its JSON form.

:class:`~napari_zfocus.model.inference.Predictor` returns one per image: the z estimate
(sub-bin and argmax), its confidence (calibrated when the model file holds a calibration,
:mod:`.calibration`), the ambiguity flags of the readout (:mod:`.readout`) and the
out-of-distribution score (:mod:`.ood`). :attr:`Prediction.flagged` says whether the
estimate may be acted on; :meth:`Prediction.to_dict` is what ``zfocus predict`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_zfocus.model.calibration import FLAG_BELOW_CONFIDENCE

__all__ = ["Prediction"]


@dataclass
class Prediction:
    """The model's reading of one image.

    Attributes
    ----------
    z_um
        Softmax expected value around the mode (sub-bin), um. Positive: the sample
        plane is above the focal plane.
    z_argmax_um
        Centre of the most probable bin (the paper's readout), um.
    confidence
        Calibrated model: the probability that ``z_um`` is within +/-1 um of the truth.
        Uncalibrated model: the softmax mass within +/-1 bin of the mode. 0..1.
    entropy
        Entropy of the softmax, nats.
    bimodal
        Two separated modes with substantial mass each (ambiguous image).
    softmax
        ``(n_bins,)`` probabilities.
    bin_centres_um
        ``(n_bins,)`` bin centres, um.
    second_mode_um
        Centre of the second mode when ``bimodal``, else NaN.
    calibrated
        Whether ``confidence`` is calibrated (the model file holds a calibration).
    ood_score
        Out-of-distribution score (> 1: the image does not look like the training images
        at ``z_um``); NaN when the model has no OOD reference.
    ood
        ``ood_score > 1``.
    """

    z_um: float
    z_argmax_um: float
    confidence: float
    entropy: float
    bimodal: bool
    softmax: np.ndarray
    bin_centres_um: np.ndarray
    second_mode_um: float = float("nan")
    calibrated: bool = False
    ood_score: float = float("nan")
    ood: bool = False

    @property
    def flagged(self) -> bool:
        """Out of distribution, or a confidence below 0.3 (or NaN): do not act on it."""
        return bool(self.ood or not self.confidence >= FLAG_BELOW_CONFIDENCE)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists instead of arrays, ``None`` for NaN)."""
        second = None if np.isnan(self.second_mode_um) else float(self.second_mode_um)
        return {
            "z_um": float(self.z_um),
            "z_argmax_um": float(self.z_argmax_um),
            "confidence": float(self.confidence),
            "entropy": float(self.entropy),
            "bimodal": bool(self.bimodal),
            "second_mode_um": second,
            "calibrated": bool(self.calibrated),
            "ood_score": None if np.isnan(self.ood_score) else float(self.ood_score),
            "ood": bool(self.ood),
            "flagged": self.flagged,
            "softmax": [float(v) for v in self.softmax],
            "bin_centres_um": [float(v) for v in self.bin_centres_um],
        }
