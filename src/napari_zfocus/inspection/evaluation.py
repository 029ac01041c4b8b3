"""Evaluate a z-position model on an annotated dataset, with the paper's baselines.

Every slice of every stack whose true z (``(index - focus_index) * z_step_um``) lies
inside the model's z range is one test image. By default the model reads the centre field
of each image, as in the paper; ``crops="tiles"`` uses every non-overlapping field of each
image instead (more samples from large frames).

Metrics (:func:`compute_metrics`): ``n_images``, ``median_abs_error_um``, ``within_1um``
(fraction with |error| <= 1 um), ``mse_um2``, ``bias_um`` (mean predicted - true),
``mean_abs_error_um``, ``p90_abs_error_um`` and ``sign_accuracy`` (fraction predicted on
the right side of focus, images with |true z| < bin/2 excluded). Plus a confusion matrix
P(predicted bin | true bin) and the error per true z.

:func:`iter_evaluate` is a generator (yields :class:`EvalProgress`, returns the
:class:`EvaluationResult`) so a napari worker can show progress and cancel;
:func:`evaluate` drives it with an optional callback.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_zfocus._atomic import atomic_open
from napari_zfocus.errors import ZFocusError, describe
from napari_zfocus.inspection.baselines import ScoreFn, focus_score_functions, iqa_profile_predict
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.inference import _cancelled
from napari_zfocus.model.preprocess import centre_crop, field_source_px, to_model_grid

__all__ = [
    "EvalProgress",
    "EvaluationResult",
    "compute_metrics",
    "confusion_matrix",
    "errors_by_true_z",
    "iter_evaluate",
    "evaluate",
    "write_per_image_csv",
    "write_confusion_csv",
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
)


@dataclass
class EvalProgress:
    """One progress event: ``done`` of ``total`` images in ``stage`` ("cnn", "baselines")."""

    stage: str
    done: int
    total: int
    message: str = ""


@dataclass
class EvaluationResult:
    """Everything an evaluation produced.

    Attributes
    ----------
    metrics
        CNN metrics with the expected-value readout, plus ``"argmax"``: the same metrics
        with the paper's argmax readout.
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
        return _jsonable(out)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


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


# -- evaluation loop --------------------------------------------------------------------
@dataclass
class _Job:
    """The test images of one stack."""

    name: str
    annotation: Any
    stack: Any
    indices: list[int]
    z_um: list[float]
    path: str = ""  # the stack's file, for error messages


def _jobs(dataset: Any, config: ModelConfig) -> list[_Job]:
    eps = 1e-6 * max(1.0, config.bin_um)
    jobs = []
    for a in dataset.annotations:
        stack = dataset.open_stack(a)
        idx, zs = [], []
        for i in range(stack.n_slices):
            z = (i - a.focus_index) * a.z_step_um
            if config.z_min_um - eps <= z <= config.z_max_um + eps:
                idx.append(i)
                zs.append(float(z))
        path = dataset.stack_path(a) if hasattr(dataset, "stack_path") else a.stack
        jobs.append(_Job(str(a.stack), a, stack, idx, zs, str(path)))
    return jobs


def _field(image: np.ndarray, pixel_size_um: float, config: ModelConfig) -> np.ndarray:
    """The centre field at the model's pixel size, not normalised (for focus scores)."""
    crop = centre_crop(image, field_source_px(pixel_size_um, config), pixel_size_um=pixel_size_um)
    return to_model_grid(crop, pixel_size_um, config)[0, 0].numpy()


def iter_evaluate(
    predictor: Any,
    dataset: Any,
    *,
    baselines: bool = False,
    crops: str = "centre",
    cancel: Any = None,
    batch_size: int = 16,
    score_functions: dict[str, ScoreFn] | None = None,
    fit_dataset: Any = None,
) -> Generator[EvalProgress, None, EvaluationResult]:
    """Evaluate ``predictor`` on ``dataset``; yield progress, return the result.

    Parameters
    ----------
    predictor
        A :class:`~napari_zfocus.model.inference.Predictor` (anything with ``config``,
        ``predict_batch(images, pixel_size_um)`` and, for tiles, ``predict_tiles``).
    dataset
        A :class:`napari_zfocus.data.Dataset` (``annotations``, ``open_stack``).
    baselines
        Also evaluate the focus-score IQA-profile baselines.
    crops
        ``"centre"`` (the paper) or ``"tiles"`` (every non-overlapping field of each image).
    cancel
        Callable or object with ``is_set()``; when set, stop and return what is done.
    batch_size
        Images per forward pass.
    score_functions
        Focus scores for the baselines (default :mod:`napari_zfocus.annotation.focus_scores`).
    fit_dataset
        Dataset whose stacks fit the baseline mapping (default: leave-one-out).

    Raises
    ------
    ZFocusError
        Unreadable stacks, images smaller than the model's field, bad ``crops``.
    """
    if crops not in ("centre", "tiles"):
        raise ZFocusError(f"crops must be 'centre' or 'tiles', got {crops!r}")
    config: ModelConfig = predictor.config
    jobs = _jobs(dataset, config)
    total = sum(len(j.indices) for j in jobs)
    scores_fns = (score_functions or focus_score_functions()) if baselines else {}

    cols: dict[str, list] = {c: [] for c in PER_IMAGE_COLUMNS}
    stack_scores: dict[str, list[list[float]]] = {name: [] for name in scores_fns}
    stack_z: list[list[float]] = []
    done, cancelled = 0, False
    yield EvalProgress("cnn", 0, total, "evaluating")
    for job in jobs:
        per_stack_scores: dict[str, list[float]] = {name: [] for name in scores_fns}
        for start in range(0, len(job.indices), batch_size):
            if _cancelled(cancel):
                cancelled = True
                break
            chunk = job.indices[start : start + batch_size]
            zs = job.z_um[start : start + batch_size]
            try:
                _evaluate_chunk(
                    predictor, job, chunk, zs, crops, cols, scores_fns, per_stack_scores, config
                )
            except ZFocusError as exc:
                # Name the stack: "image smaller than the field" alone does not say which.
                msg = str(exc)
                raise ZFocusError(msg if job.name in msg else describe(job.path, msg)) from None
            done += len(chunk)
            yield EvalProgress("cnn", done, total, job.name)
        if cancelled:
            break
        if scores_fns:
            for name in scores_fns:
                stack_scores[name].append(per_stack_scores[name])
            stack_z.append(job.z_um)

    per_image = {k: np.asarray(v) for k, v in cols.items()}
    result = _summarise(per_image, config, cancelled)
    if scores_fns and not cancelled:
        yield EvalProgress("baselines", 0, len(scores_fns), "fitting focus-score baselines")
        fit = _fit_scores(fit_dataset, config, scores_fns) if fit_dataset is not None else None
        for k, name in enumerate(scores_fns):
            pred = iqa_profile_predict(
                [np.asarray(s) for s in stack_scores[name]],
                [np.asarray(z) for z in stack_z],
                fit=None if fit is None else (fit[0][name], fit[1]),
            )
            flat = np.concatenate(pred) if pred else np.empty(0)
            # Baselines score one value per image; with tiles, repeat it for every tile.
            per_row = _expand_to_rows(flat, jobs, per_image)
            result.baseline_predictions[name] = per_row
            result.baselines[name] = compute_metrics(
                per_image["z_true_um"], per_row, bin_um=config.bin_um, sign=False
            )
            yield EvalProgress("baselines", k + 1, len(scores_fns), name)
    return result


def _evaluate_chunk(
    predictor: Any,
    job: _Job,
    chunk: list[int],
    zs: list[float],
    crops: str,
    cols: dict[str, list],
    scores_fns: dict[str, ScoreFn],
    per_stack_scores: dict[str, list[float]],
    config: ModelConfig,
) -> None:
    """Predict (and score) one batch of slices of one stack; append the rows."""
    px = job.annotation.pixel_size_um
    images = [job.stack.slice(i) for i in chunk]
    if crops == "centre":
        preds = predictor.predict_batch(images, px)
        for i, z, p in zip(chunk, zs, preds, strict=True):
            _add_row(
                cols,
                job.name,
                i,
                -1,
                -1,
                z,
                p.z_um,
                p.z_argmax_um,
                p.confidence,
                p.entropy,
                p.bimodal,
            )
    else:
        for i, z, image in zip(chunk, zs, images, strict=True):
            fm = predictor.predict_tiles(image, px)
            for r in range(fm.shape[0]):
                for c in range(fm.shape[1]):
                    _add_row(
                        cols,
                        job.name,
                        i,
                        r,
                        c,
                        z,
                        fm.z_um[r, c],
                        fm.z_argmax_um[r, c],
                        fm.confidence[r, c],
                        fm.entropy[r, c],
                        fm.bimodal[r, c],
                    )
    for image in images if scores_fns else ():
        f = _field(image, px, config)
        for name, fn in scores_fns.items():
            per_stack_scores[name].append(float(fn(f)))


def _add_row(
    cols: dict[str, list],
    stack: str,
    index: int,
    row: int,
    col: int,
    z: float,
    z_pred: float,
    z_argmax: float,
    conf: float,
    entropy: float,
    bimodal: bool,
) -> None:
    cols["stack"].append(stack)
    cols["slice"].append(int(index))
    cols["tile_row"].append(int(row))
    cols["tile_col"].append(int(col))
    cols["z_true_um"].append(float(z))
    cols["z_pred_um"].append(float(z_pred))
    cols["z_argmax_um"].append(float(z_argmax))
    cols["error_um"].append(float(z_pred) - float(z))
    cols["confidence"].append(float(conf))
    cols["entropy"].append(float(entropy))
    cols["bimodal"].append(bool(bimodal))


def _expand_to_rows(
    flat: np.ndarray, jobs: list[_Job], per_image: dict[str, np.ndarray]
) -> np.ndarray:
    """Map one value per (stack, slice) onto the per-image rows (several rows per slice
    with tiles)."""
    lookup: dict[tuple[str, int], float] = {}
    k = 0
    for job in jobs:
        for i in job.indices:
            if k < flat.size:
                lookup[(job.name, i)] = float(flat[k])
            k += 1
    keys = zip(per_image["stack"], per_image["slice"], strict=True)
    return np.asarray(
        [lookup.get((s, int(i)), np.nan) for s, i in keys],
        dtype=np.float64,
    )


def _fit_scores(
    dataset: Any, config: ModelConfig, scores_fns: dict[str, ScoreFn]
) -> tuple[dict[str, list[np.ndarray]], list[np.ndarray]]:
    """Focus scores of every in-range slice of the fitting stacks."""
    scores: dict[str, list[np.ndarray]] = {name: [] for name in scores_fns}
    zs: list[np.ndarray] = []
    for job in _jobs(dataset, config):
        px = job.annotation.pixel_size_um
        fields = [_field(job.stack.slice(i), px, config) for i in job.indices]
        for name, fn in scores_fns.items():
            scores[name].append(np.asarray([fn(f) for f in fields], dtype=np.float64))
        zs.append(np.asarray(job.z_um))
    return scores, zs


def _summarise(
    per_image: dict[str, np.ndarray], config: ModelConfig, cancelled: bool
) -> EvaluationResult:
    t = per_image["z_true_um"].astype(np.float64)
    p = per_image["z_pred_um"].astype(np.float64)
    metrics = compute_metrics(t, p, bin_um=config.bin_um)
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


def evaluate(
    predictor: Any,
    dataset: Any,
    *,
    baselines: bool = False,
    progress: Callable[[EvalProgress], None] | None = None,
    cancel: Any = None,
    **kwargs: Any,
) -> EvaluationResult:
    """Run :func:`iter_evaluate` to the end, calling ``progress`` on every event."""
    gen = iter_evaluate(predictor, dataset, baselines=baselines, cancel=cancel, **kwargs)
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(event)


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
