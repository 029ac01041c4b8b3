"""What an evaluation produced: :class:`EvaluationResult`, its metrics and CSV exports.

Metrics (:func:`compute_metrics`): ``n_images``, ``median_abs_error_um``, ``within_1um``
(fraction with |error| <= 1 um), ``mse_um2``, ``bias_um`` (mean predicted - true),
``mean_abs_error_um``, ``p90_abs_error_um`` and ``sign_accuracy`` (fraction predicted on
the right side of focus, images with |true z| < bin/2 excluded). Plus a confusion matrix
P(predicted bin | true bin) and the error per true z. Running an evaluation is
:mod:`.evaluation`.

The CNN's metrics also say how far its confidence can be trusted: ``ece``, the expected
calibration error (10 equal-width bins) of ``confidence`` as the probability of the event
|error| <= 1 um (expected-value readout), and ``flagged``, the share of images the model
flags (confidence below 0.3 or out of distribution; see
:mod:`napari_zfocus.model.calibration`). And ``distance_gain``: the slope of its readings
against slice position near focus, which no per-image flag can see
(:mod:`napari_zfocus.model.distance_scale`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_zfocus._atomic import atomic_open
from napari_zfocus._json import jsonable
from napari_zfocus.model.calibration import expected_calibration_error, within_tolerance
from napari_zfocus.model.config import ModelConfig

__all__ = [
    "PER_IMAGE_COLUMNS",
    "EvaluationResult",
    "compute_metrics",
    "confusion_matrix",
    "errors_by_true_z",
    "summarise",
    "write_confusion_csv",
    "write_per_image_csv",
]

#: Columns of the per-image table (and its CSV).
PER_IMAGE_COLUMNS = (
    "stack",
    "slice",
    "tile_row",
    "tile_col",
    "z_true_um",
    "z_pred_um",
    "z_argmax_um",
    "error_um",
    "confidence",
    "entropy",
    "bimodal",
    "ood_score",
    "flagged",
)


@dataclass
class EvaluationResult:
    """Everything an evaluation produced.

    Attributes
    ----------
    metrics
        CNN metrics with the expected-value readout (with ``ece`` and ``flagged``), plus
        ``"argmax"``: the same metrics with the paper's argmax readout.
    per_image
        Column name -> array (see ``PER_IMAGE_COLUMNS``), one entry per test image.
    confusion
        ``(n_bins, n_bins)`` P(predicted bin | true bin), rows = true bins (rows with no
        images are zero).
    bin_centres_um
        Bin centres of the confusion matrix.
    by_true_z
        ``z_um``, ``n``, ``mean_abs_error_um``, ``median_abs_error_um`` per true z.
    baselines
        Baseline name -> metrics (``sign_accuracy`` is ``None``: the sign is an oracle).
    baseline_predictions
        Baseline name -> predicted z per test image (aligned with ``per_image``).
    cancelled
        True when the run was cancelled; the result covers the images done so far.
    """

    metrics: dict[str, Any]
    per_image: dict[str, np.ndarray]
    confusion: np.ndarray
    bin_centres_um: np.ndarray
    by_true_z: dict[str, list]
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline_predictions: dict[str, np.ndarray] = field(default_factory=dict)
    cancelled: bool = False

    def to_json_dict(self) -> dict[str, Any]:
        """The summary the CLI prints: metrics at the top level, then the extras."""
        out = dict(self.metrics)
        out["baselines"] = self.baselines
        out["by_true_z"] = self.by_true_z
        out["cancelled"] = self.cancelled
        return jsonable(out)


# -- metrics ---------------------------------------------------------------------------
def compute_metrics(
    z_true_um: np.ndarray, z_pred_um: np.ndarray, *, bin_um: float = 1.0, sign: bool = True
) -> dict[str, Any]:
    """Error metrics of predicted vs true z (um).

    Parameters
    ----------
    z_true_um, z_pred_um
        Same-length arrays.
    bin_um
        Bin size; images with |true z| < bin/2 are left out of ``sign_accuracy``.
    sign
        Compute ``sign_accuracy`` (``None`` when the sign came from an oracle).
    """
    t = np.asarray(z_true_um, dtype=np.float64)
    p = np.asarray(z_pred_um, dtype=np.float64)
    err = p - t
    n = int(t.size)
    if n == 0:
        nothing = None
        return {
            "n_images": 0,
            "median_abs_error_um": nothing,
            "within_1um": nothing,
            "mse_um2": nothing,
            "bias_um": nothing,
            "mean_abs_error_um": nothing,
            "p90_abs_error_um": nothing,
            "sign_accuracy": nothing,
        }
    a = np.abs(err)
    sign_acc: float | None = None
    if sign:
        away = np.abs(t) >= bin_um / 2
        if away.any():
            sign_acc = float(np.mean(np.sign(p[away]) == np.sign(t[away])))
    return {
        "n_images": n,
        "median_abs_error_um": float(np.median(a)),
        # 1e-9: a prediction exactly 1 um off (argmax readout on 1 um bins) counts as within.
        "within_1um": float(np.mean(a <= 1.0 + 1e-9)),
        "mse_um2": float(np.mean(err**2)),
        "bias_um": float(np.mean(err)),
        "mean_abs_error_um": float(np.mean(a)),
        "p90_abs_error_um": float(np.percentile(a, 90)),
        "sign_accuracy": sign_acc,
    }


def confidence_metrics(per_image: dict[str, np.ndarray]) -> dict[str, float | None]:
    """``ece`` of the ``confidence`` column for |error| <= 1 um and the ``flagged`` share
    (``None`` without images)."""
    conf = np.asarray(per_image["confidence"], dtype=np.float64)
    if conf.size == 0:
        return {"ece": None, "flagged": None}
    hit = within_tolerance(per_image["z_pred_um"], per_image["z_true_um"])
    return {
        "ece": expected_calibration_error(conf, hit),
        "flagged": float(np.mean(np.asarray(per_image["flagged"], dtype=bool))),
    }


def distance_gain(per_image: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The model's gain on these stacks as ``zfocus rescale`` measures it (the slope of
    its readings against slice position near focus, median over the stacks), and whether
    it is a ``change`` of setting; ``None`` when no stack gives a slope.

    A model at another condenser aperture or wavelength reads distances too short or too
    long (README, "After changing the microscope"); no per-image flag sees that, this does.
    """
    from napari_zfocus.model.distance_scale import fit_gain, gain_evidence

    stacks = np.asarray(per_image["stack"])
    t = np.asarray(per_image["z_true_um"], dtype=np.float64)
    p = np.asarray(per_image["z_pred_um"], dtype=np.float64)
    # Only the slices' differences enter a slope, never where focus was marked.
    gains = [fit_gain(t[stacks == s], p[stacks == s]).gain for s in np.unique(stacks)]
    good = [g for g in gains if np.isfinite(g)]
    if not good:
        return None
    _, threshold, change = gain_evidence(good)
    return {"gain": float(np.median(good)), "threshold": threshold, "change": change,
            "stacks": len(good)}


def confusion_matrix(
    z_true_um: np.ndarray, z_pred_um: np.ndarray, config: ModelConfig
) -> np.ndarray:
    """P(predicted bin | true bin): ``(n_bins, n_bins)``, rows = true bin, rows sum to 1
    (or 0 where no image has that true bin)."""
    n = config.n_bins
    counts = np.zeros((n, n), dtype=np.float64)
    ti = config.z_to_bin(np.asarray(z_true_um))
    pi = config.z_to_bin(np.asarray(z_pred_um))
    np.add.at(counts, (ti, pi), 1.0)
    rows = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)


def errors_by_true_z(
    z_true_um: np.ndarray, z_pred_um: np.ndarray, decimals: int = 3
) -> dict[str, list]:
    """Mean and median |error| for every distinct true z (rounded to ``decimals``)."""
    t = np.round(np.asarray(z_true_um, dtype=np.float64), decimals)
    a = np.abs(np.asarray(z_pred_um, dtype=np.float64) - np.asarray(z_true_um, dtype=np.float64))
    zs = np.unique(t)
    return {
        "z_um": [float(z) for z in zs],
        "n": [int(np.sum(t == z)) for z in zs],
        "mean_abs_error_um": [float(np.mean(a[t == z])) for z in zs],
        "median_abs_error_um": [float(np.median(a[t == z])) for z in zs],
    }


def summarise(
    per_image: dict[str, np.ndarray], config: ModelConfig, cancelled: bool
) -> EvaluationResult:
    """Metrics, confusion matrix and error per true z of a per-image table."""
    t = per_image["z_true_um"].astype(np.float64)
    p = per_image["z_pred_um"].astype(np.float64)
    metrics = compute_metrics(t, p, bin_um=config.bin_um)
    metrics.update(confidence_metrics(per_image))
    metrics["distance_gain"] = distance_gain(per_image)
    metrics["readout"] = "expected_value"
    metrics["argmax"] = compute_metrics(
        t, per_image["z_argmax_um"].astype(np.float64), bin_um=config.bin_um
    )
    return EvaluationResult(
        metrics=metrics,
        per_image=per_image,
        confusion=confusion_matrix(t, p, config),
        bin_centres_um=np.asarray(config.bin_centres_um),
        by_true_z=errors_by_true_z(t, p),
        cancelled=cancelled,
    )


# -- CSV exports ------------------------------------------------------------------------
def write_per_image_csv(result: EvaluationResult, path: str | os.PathLike[str]) -> Path:
    """Per-image errors (one row per test image, baseline predictions as extra columns)."""
    names = list(result.baseline_predictions)
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*PER_IMAGE_COLUMNS, *(f"{n}_z_pred_um" for n in names)])
        n = len(result.per_image["z_true_um"])
        for i in range(n):
            row = [_csv_value(result.per_image[c][i]) for c in PER_IMAGE_COLUMNS]
            row += [_csv_value(result.baseline_predictions[b][i]) for b in names]
            w.writerow(row)
    return Path(path)


def write_confusion_csv(result: EvaluationResult, path: str | os.PathLike[str]) -> Path:
    """Confusion matrix: first column true bin centre, header predicted bin centres."""
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["true_z_um \\ predicted_z_um", *(f"{c:g}" for c in result.bin_centres_um)])
        for c, row in zip(result.bin_centres_um, result.confusion, strict=True):
            w.writerow([f"{c:g}", *(f"{v:.6g}" for v in row)])
    return Path(path)


def _csv_value(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    if isinstance(v, (np.bool_, bool)):
        return int(bool(v))
    if isinstance(v, np.integer):
        return int(v)
    return v
