"""Calibrated confidence: the probability that an estimate is within +/-1 um of the truth.

The live controller and the acquisition engine hold when the confidence is low, so the
number must mean what it says: of the images given confidence 0.8, about 80 % must be
within +/-1 um. The network's softmax does not give that by itself (it is trained on
soft labels 1 um wide, and it is overconfident on images unlike its training data), so
each model is calibrated on held-out stacks of its own world (the validation stacks at
the end of ``zfocus train``, or a dataset given to ``zfocus calibrate``):

1. **Temperature** ``T``: the softmax becomes ``softmax(logits / T)``, fitted by the
   negative log-likelihood (NLL) of the true z-bin (a true z between two bin centres is
   split between them). This is the classic temperature scaling; it makes the softmax a
   calibrated distribution over z and never moves its mode.
2. **Event map** ``(slope, intercept)``: the confidence is
   ``sigmoid(slope * logit(m) + intercept)``, where ``m`` is the tempered softmax mass
   within +/-1 um of the reported estimate (:func:`~.readout.window_mass`), fitted by
   the binary NLL of the event "|estimate - truth| <= 1 um" (Platt scaling, with Platt's
   smoothed targets so a validation set without a single miss cannot push it to 1).
   One temperature does less: fitted on 60 stacks of the demo model's world, it left an
   ECE of 0.040 on 40 other stacks, against 0.027 with the map.

Both are fitted by NLL rather than by minimising the expected calibration error (ECE)
directly: NLL is a proper scoring rule, smooth and independent of any binning, while ECE
jumps as images cross bin edges and, on the few hundred images of a validation set, would
be fitted to the noise of its sparsely filled low-confidence bins. ECE is what we report
(:func:`expected_calibration_error`, 10 equal-width bins).

The estimate ``z_um`` is read from the network's own softmax, so calibration never changes
an estimate, only the confidence. A model file without calibration (all files written
before it existed) keeps the old confidence, the softmax mass within +/-1 bin of the mode,
and is reported as uncalibrated. An image is **flagged** when its confidence is below
:data:`FLAG_BELOW_CONFIDENCE` or it is out of distribution (:mod:`.ood`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.ood import OODReference, spectral_features
from napari_zfocus.model.readout import readout, window_mass
from napari_zfocus.validation import check_entry_version, check_number

__all__ = [
    "CALIBRATION_VERSION",
    "ECE_BINS",
    "FLAG_BELOW_CONFIDENCE",
    "MIN_CALIBRATION_IMAGES",
    "WITHIN_UM",
    "Calibration",
    "expected_calibration_error",
    "fit_calibration",
    "fit_event_map",
    "fit_temperature",
    "within_tolerance",
]

#: Version of the ``calibration`` entry of model files (a newer one is refused).
CALIBRATION_VERSION = 1
#: The event the confidence is the probability of: |estimate - truth| <= this, um.
WITHIN_UM = 1.0
#: Images below this confidence count as flagged (the live controller's default gate).
FLAG_BELOW_CONFIDENCE = 0.3
#: Equal-width confidence bins of the reported ECE.
ECE_BINS = 10
#: Fewest validation images a calibration is fitted on.
MIN_CALIBRATION_IMAGES = 50
#: Bounds of the fitted numbers, and of those a model file may hold.
TEMPERATURE_RANGE = (1e-2, 1e2)
SLOPE_RANGE = (1e-2, 1e2)
INTERCEPT_RANGE = (-1e2, 1e2)
#: Masses are kept this far from 0 and 1 before the logit.
_EPS = 1e-12


def within_tolerance(z_pred_um: Any, z_true_um: Any) -> np.ndarray:
    """Whether each estimate is within +/-1 um of the truth (the calibrated event).

    A hair of slack (1e-9 um) counts an argmax estimate exactly one 1-um bin off as
    within, as every accuracy figure of the project does.
    """
    err = np.abs(np.asarray(z_pred_um, dtype=np.float64) - np.asarray(z_true_um, dtype=np.float64))
    return np.asarray(err <= WITHIN_UM + 1e-9)


def expected_calibration_error(confidence: Any, correct: Any, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error over ``n_bins`` equal-width confidence bins.

    ``sum_k (n_k / N) |mean confidence_k - fraction correct_k|``; bin ``k`` holds the
    confidences in ``[k / n_bins, (k + 1) / n_bins)``, the last one also 1.0. Images with a
    NaN confidence are left out; NaN when none is left.
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    hit = np.asarray(correct, dtype=np.float64).ravel()
    if conf.shape != hit.shape:
        raise ValueError(f"{conf.size} confidences but {hit.size} outcomes")
    keep = np.isfinite(conf)
    conf, hit = np.clip(conf[keep], 0.0, 1.0), hit[keep]
    if conf.size == 0:
        return math.nan
    index = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    total = 0.0
    for k in np.unique(index):
        members = index == k
        total += members.sum() * abs(conf[members].mean() - hit[members].mean())
    return float(total / conf.size)


def _tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / T)`` row-wise: the same as dividing the logits by ``T``."""
    p = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return p
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(np.clip(p, 1e-300, None)) / temperature
        logp -= np.max(logp, axis=-1, keepdims=True)
        q = np.exp(logp)
        return q / q.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _logit(m: np.ndarray) -> np.ndarray:
    m = np.clip(m, _EPS, 1.0 - _EPS)
    return np.log(m) - np.log1p(-m)


@dataclass(frozen=True)
class Calibration:
    """A model's calibration (see the module doc); stored in its model file.

    Attributes
    ----------
    temperature
        Softmax temperature ``T`` (logits are divided by it).
    slope, intercept
        Event map from the tempered window mass to the confidence.
    ood
        The out-of-distribution reference, or ``None`` (no OOD check).
    fitted
        How it was fitted (JSON): images, source, ECE before and after...
    """

    temperature: float = 1.0
    slope: float = 1.0
    intercept: float = 0.0
    ood: OODReference | None = None
    fitted: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, bounds in (("temperature", TEMPERATURE_RANGE), ("slope", SLOPE_RANGE),
                             ("intercept", INTERCEPT_RANGE)):
            value = check_number(getattr(self, name), f"calibration {name}", lo=bounds[0],
                                 hi=bounds[1], strict=True)
            object.__setattr__(self, name, float(value))
        if not isinstance(self.fitted, dict):
            raise ZFocusError("calibration fitted must be a JSON object")

    def tempered(self, probs: np.ndarray) -> np.ndarray:
        """The softmax after temperature scaling (same shape)."""
        return _tempered(probs, self.temperature)

    def confidence(self, probs: np.ndarray, z_um: Any, bin_centres_um: np.ndarray) -> np.ndarray:
        """Calibrated P(|estimate - truth| <= 1 um) of estimates ``z_um`` read from the
        network's softmax ``probs`` (``(B,)`` or ``(N, B)``); NaN where ``z_um`` is NaN."""
        mass = window_mass(self.tempered(probs), bin_centres_um, z_um, WITHIN_UM)
        return _sigmoid(self.slope * _logit(mass) + self.intercept)

    def ood_scores(self, inputs: Any, z_um: Any, bin_centres_um: np.ndarray) -> np.ndarray:
        """OOD score of each network input (``(N, 1, n, n)``, normalised) at its estimate
        (> 1: out of distribution); NaN without an OOD reference."""
        z = np.atleast_1d(np.asarray(z_um, dtype=np.float64))
        if self.ood is None:
            return np.full(z.shape, np.nan)
        return self.ood.score(spectral_features(inputs), z, bin_centres_um)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the model file's ``calibration`` entry."""
        return {
            "version": CALIBRATION_VERSION,
            "event": f"|expected value - true z| <= {WITHIN_UM:g} um",
            "temperature": self.temperature,
            "slope": self.slope,
            "intercept": self.intercept,
            "ood": None if self.ood is None else self.ood.to_dict(),
            "fitted": dict(self.fitted),
        }

    @classmethod
    def from_dict(cls, d: Any, n_bins: int) -> Calibration:
        """Inverse of :meth:`to_dict` for a model of ``n_bins`` bins.

        Raises
        ------
        ZFocusError
            One line naming the bad entry (a NaN temperature, a newer version...).
        """
        check_entry_version(d, "calibration", CALIBRATION_VERSION)
        ood = d.get("ood")
        numbers: dict[str, Any] = {k: d.get(k) for k in ("temperature", "slope", "intercept")}
        return cls(  # the numbers are checked (finite, in range) by __post_init__
            **numbers,
            ood=None if ood is None else OODReference.from_dict(ood, n_bins),
            fitted=d.get("fitted", {}),
        )


def _soft_targets(z_true: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(N, B)`` targets: a true z between two bin centres is split between them."""
    step = centres[1] - centres[0] if len(centres) > 1 else 1.0
    pos = np.clip((z_true - centres[0]) / step, 0, len(centres) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(centres) - 1)
    frac = pos - lo
    target = np.zeros((len(z_true), len(centres)))
    rows = np.arange(len(z_true))
    np.add.at(target, (rows, lo), 1.0 - frac)
    np.add.at(target, (rows, hi), frac)
    return target


def fit_temperature(probs: np.ndarray, z_true_um: np.ndarray, bin_centres_um: np.ndarray) -> float:
    """The temperature that minimises the NLL of the true bins (see the module doc)."""
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-300, None))
    target = _soft_targets(np.asarray(z_true_um, dtype=np.float64),
                           np.asarray(bin_centres_um, dtype=np.float64))

    def nll(log_t: float) -> float:
        z = logp / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-(target * log_q).sum(axis=1).mean())

    lo, hi = (math.log(v) for v in TEMPERATURE_RANGE)
    found = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(math.exp(found.x))


def fit_event_map(mass: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """Platt scaling of the window mass: ``(slope, intercept)`` minimising the binary NLL."""
    from scipy.optimize import minimize

    x = _logit(np.asarray(mass, dtype=np.float64))
    y = np.asarray(correct, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    # Platt's smoothed targets: a finite answer even when every image is right.
    target = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def nll(params: np.ndarray) -> float:
        s = math.exp(params[0]) * x + params[1]
        # log(1 + exp(-s)) and log(1 + exp(s)), without overflow
        return float(np.mean(target * np.logaddexp(0, -s) + (1 - target) * np.logaddexp(0, s)))

    bounds = [tuple(math.log(v) for v in SLOPE_RANGE), INTERCEPT_RANGE]
    found = minimize(nll, np.zeros(2), method="L-BFGS-B", bounds=bounds)
    return float(math.exp(found.x[0])), float(found.x[1])


def fit_calibration(
    probs: np.ndarray,
    z_true_um: np.ndarray,
    bin_centres_um: np.ndarray,
    *,
    ood: OODReference | None = None,
    fitted: dict[str, Any] | None = None,
) -> Calibration:
    """Fit temperature and event map on held-out images of the model's world.

    Parameters
    ----------
    probs
        ``(N, B)`` the network's softmax for the images.
    z_true_um
        ``(N,)`` their true defocus.
    bin_centres_um
        The model's bin centres.
    ood
        The OOD reference to store with it.
    fitted
        Extra facts to record (source...). The ECE before (the uncalibrated confidence)
        and after (on these same images) and the share within +/-1 um are added.

    Raises
    ------
    ZFocusError
        Fewer than :data:`MIN_CALIBRATION_IMAGES` images, or a non-finite softmax.
    """
    p = np.asarray(probs, dtype=np.float64)
    z_true = np.asarray(z_true_um, dtype=np.float64)
    if len(p) < MIN_CALIBRATION_IMAGES:
        raise ZFocusError(f"calibration needs at least {MIN_CALIBRATION_IMAGES} images of "
                          f"annotated stacks, got {len(p)}")
    if not (np.isfinite(p).all() and np.isfinite(z_true).all()):
        raise ZFocusError("calibration: the model's output or the true z is not finite")
    centres = np.asarray(bin_centres_um, dtype=np.float64)
    raw = readout(p, centres)
    correct = within_tolerance(raw.z_um, z_true)
    temperature = fit_temperature(p, z_true, centres)
    mass = window_mass(_tempered(p, temperature), centres, raw.z_um, WITHIN_UM)
    slope, intercept = fit_event_map(mass, correct)
    calibration = Calibration(temperature, slope, intercept, ood)
    after = calibration.confidence(p, raw.z_um, centres)
    facts = {
        "images": int(len(p)),
        "within_1um": float(correct.mean()),
        "ece_uncalibrated": expected_calibration_error(raw.confidence, correct),
        "ece_in_sample": expected_calibration_error(after, correct),
        **(fitted or {}),
    }
    return Calibration(temperature, slope, intercept, ood, facts)
