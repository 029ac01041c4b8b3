"""Evaluate a z-position model on an annotated dataset, with the paper's baselines.

Every slice of every stack whose true z (``(index - focus_index) * z_step_um``) lies
inside the model's z range is one test image. By default the model reads the centre field
of each image, as in the paper; ``crops="tiles"`` uses every non-overlapping field of each
image instead (more samples from large frames).

The metrics, the confusion matrix, the error per true z and the CSV exports are in
:mod:`.evaluation_result` (importable from here too).

:func:`iter_evaluate` is a generator (yields :class:`EvalProgress`, returns the
:class:`EvaluationResult`) so a napari worker can show progress and cancel;
:func:`evaluate` drives it with an optional callback.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_zfocus._generators import run_to_end
from napari_zfocus.errors import ZFocusError, describe
from napari_zfocus.inspection.baselines import ScoreFn, focus_score_functions, iqa_profile_predict
from napari_zfocus.inspection.evaluation_result import (
    PER_IMAGE_COLUMNS,
    EvaluationResult,
    compute_metrics,
    confusion_matrix,
    errors_by_true_z,
    summarise,
    write_confusion_csv,
    write_per_image_csv,
)
from napari_zfocus.model.aperture import predictor_at_stack_aperture
from napari_zfocus.model.calibration import FLAG_BELOW_CONFIDENCE
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.focus_map import cancel_requested
from napari_zfocus.model.preprocess import centre_crop, field_source_px, to_model_grid

# The result, metrics and CSV exports live in .evaluation_result; importable from here.
__all__ = [
    "PER_IMAGE_COLUMNS",
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


@dataclass
class EvalProgress:
    """One progress event: ``done`` of ``total`` images in ``stage`` ("cnn", "baselines")."""

    stage: str
    done: int
    total: int
    message: str = ""


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
    source: str = "annotations.csv"  # the annotations file, for error messages


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
        jobs.append(_Job(str(a.stack), a, stack, idx, zs, str(path),
                         str(getattr(dataset, "csv_path", "annotations.csv"))))
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
    # A model that reads distances as at a reference aperture reads each stack at the
    # stack's own (annotations.csv's condenser_na), where that is given: every stack's is
    # checked here, before the first image is read.
    predictors = [predictor_at_stack_aperture(predictor, job.annotation, job.source)
                  for job in jobs]
    scores_fns = (score_functions or focus_score_functions()) if baselines else {}
    run = _Run(predictor, config, crops, scores_fns)
    yield from _run_cnn(run, jobs, predictors, batch_size, cancel)
    per_image = {k: np.asarray(v) for k, v in run.cols.items()}
    result = summarise(per_image, config, run.cancelled)
    if scores_fns and not run.cancelled:
        yield from _run_baselines(run, jobs, result, fit_dataset)
    return result


@dataclass
class _Run:
    """One evaluation's settings and what it has gathered so far."""

    predictor: Any
    config: ModelConfig
    crops: str
    scores_fns: dict[str, ScoreFn]
    cols: dict[str, list] = field(default_factory=lambda: {c: [] for c in PER_IMAGE_COLUMNS})
    #: Per baseline, one list of focus scores per finished stack.
    stack_scores: dict[str, list[list[float]]] = field(default_factory=dict)
    #: True z of the slices of every finished stack (for the baselines).
    stack_z: list[list[float]] = field(default_factory=list)
    cancelled: bool = False


def _run_cnn(
    run: _Run, jobs: list[_Job], predictors: list[Any], batch_size: int, cancel: Any
) -> Generator[EvalProgress, None, None]:
    """Predict every test image, batch by batch (each job with its predictor); stop early
    when ``cancel`` is set."""
    total = sum(len(j.indices) for j in jobs)
    run.stack_scores = {name: [] for name in run.scores_fns}
    done = 0
    yield EvalProgress("cnn", 0, total, "evaluating")
    for job, predictor in zip(jobs, predictors, strict=True):
        per_stack_scores: dict[str, list[float]] = {name: [] for name in run.scores_fns}
        for start in range(0, len(job.indices), batch_size):
            if cancel_requested(cancel):
                run.cancelled = True
                return
            chunk = job.indices[start : start + batch_size]
            zs = job.z_um[start : start + batch_size]
            try:
                _evaluate_chunk(
                    predictor, job, chunk, zs, run.crops, run.cols, run.scores_fns,
                    per_stack_scores, run.config,
                )
            except ZFocusError as exc:
                # Name the stack: "image smaller than the field" alone does not say which.
                msg = str(exc)
                raise ZFocusError(msg if job.name in msg else describe(job.path, msg)) from None
            done += len(chunk)
            yield EvalProgress("cnn", done, total, job.name)
        if run.scores_fns:
            for name in run.scores_fns:
                run.stack_scores[name].append(per_stack_scores[name])
            run.stack_z.append(job.z_um)


def _run_baselines(
    run: _Run, jobs: list[_Job], result: EvaluationResult, fit_dataset: Any
) -> Generator[EvalProgress, None, None]:
    """Fit and score the focus-score baselines into ``result``."""
    scores_fns, config, per_image = run.scores_fns, run.config, result.per_image
    yield EvalProgress("baselines", 0, len(scores_fns), "fitting focus-score baselines")
    fit = _fit_scores(fit_dataset, config, scores_fns) if fit_dataset is not None else None
    for k, name in enumerate(scores_fns):
        pred = iqa_profile_predict(
            [np.asarray(s) for s in run.stack_scores[name]],
            [np.asarray(z) for z in run.stack_z],
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
        for i, z, p in zip(chunk, zs, predictor.predict_batch(images, px), strict=True):
            _add_row(cols, job.name, i, -1, -1, z, p.z_um, p.z_argmax_um, p.confidence,
                     p.entropy, p.bimodal, ood_score=p.ood_score, flagged=p.flagged)
    else:
        for i, z, image in zip(chunk, zs, images, strict=True):
            fm = predictor.predict_tiles(image, px)
            for r in range(fm.shape[0]):
                for c in range(fm.shape[1]):
                    # Tiles have no OOD score: flagged by their confidence alone.
                    conf = fm.confidence[r, c]
                    _add_row(cols, job.name, i, r, c, z, fm.z_um[r, c], fm.z_argmax_um[r, c],
                             conf, fm.entropy[r, c], fm.bimodal[r, c], ood_score=np.nan,
                             flagged=not conf >= FLAG_BELOW_CONFIDENCE)
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
    *,
    ood_score: float,
    flagged: bool,
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
    cols["ood_score"].append(float(ood_score))
    cols["flagged"].append(bool(flagged))


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
    return run_to_end(iter_evaluate(predictor, dataset, baselines=baselines, cancel=cancel,
                                    **kwargs), progress)
