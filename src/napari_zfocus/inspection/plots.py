"""PNG plots of evaluations and training runs (matplotlib, Agg; no pyplot).

Figures are built with :class:`matplotlib.figure.Figure` and an Agg canvas, never through
``matplotlib.pyplot``: pyplot keeps global state and may pick a Qt backend, which must
not interfere with napari's own Qt event loop. Every function returns the Figure and,
given ``path``, also writes a PNG atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from napari_zfocus._atomic import atomic_path

__all__ = [
    "error_histogram",
    "confusion_heatmap",
    "error_vs_true_z",
    "training_curves",
    "save_figure",
    "save_evaluation_plots",
]


def _figure(size: tuple[float, float] = (6.0, 4.0)) -> Figure:
    # Fixed margins instead of constrained layout: layout solving took most of the
    # drawing time (seconds per figure on a busy 2-core machine).
    fig = Figure(figsize=size, dpi=100)
    fig.subplots_adjust(left=0.1, right=0.88, bottom=0.13, top=0.9, wspace=0.35)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as a PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def _maybe_save(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def error_histogram(
    errors_um: np.ndarray,
    *,
    baselines: Mapping[str, np.ndarray] | None = None,
    bin_um: float = 1.0,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Histogram of prediction errors (um) of the CNN, optionally with baselines."""
    fig = _figure()
    ax = fig.add_subplot()
    series = {"CNN": np.asarray(errors_um, dtype=float)}
    for name, err in (baselines or {}).items():
        series[name] = np.asarray(err, dtype=float)
    finite = np.concatenate([e[np.isfinite(e)] for e in series.values()] or [np.zeros(1)])
    lim = max(2.0, float(np.nanpercentile(np.abs(finite), 99)) if finite.size else 2.0)
    step = bin_um / 2
    edges = np.arange(-lim - step, lim + 2 * step, step)
    for name, err in series.items():
        err = err[np.isfinite(err)]
        ax.hist(
            err,
            bins=edges,  # type: ignore[arg-type]  # matplotlib takes an array of edges
            histtype="step" if name != "CNN" else "stepfilled",
            alpha=1.0 if name != "CNN" else 0.5,
            label=name,
            density=True,
        )
    ax.axvspan(-1, 1, color="green", alpha=0.08, label="within 1 um")
    ax.set_xlabel("predicted - true z (um)")
    ax.set_ylabel("fraction of images per um")
    ax.set_title("Prediction error")
    ax.legend(fontsize="small")
    return _maybe_save(fig, path)


def confusion_heatmap(
    confusion: np.ndarray,
    bin_centres_um: np.ndarray,
    *,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Heatmap of P(predicted bin | true bin)."""
    fig = _figure((5.5, 5.0))
    fig.subplots_adjust(left=0.14)
    ax = fig.add_subplot()
    c = np.asarray(bin_centres_um, dtype=float)
    half = (c[1] - c[0]) / 2 if c.size > 1 else 0.5
    extent = (c[0] - half, c[-1] + half, c[0] - half, c[-1] + half)
    im = ax.imshow(
        np.asarray(confusion).T,
        origin="lower",
        extent=extent,
        cmap="viridis",
        vmin=0,
        vmax=1,
        aspect="equal",
    )
    ax.plot([c[0], c[-1]], [c[0], c[-1]], color="white", lw=0.5, ls="--")
    ax.set_xlabel("true z (um)")
    ax.set_ylabel("predicted z (um)")
    ax.set_title("P(predicted | true)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _maybe_save(fig, path)


def error_vs_true_z(
    z_true_um: np.ndarray,
    z_pred_um: np.ndarray,
    *,
    baselines: Mapping[str, np.ndarray] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Predicted vs true z (scatter) and median |error| per true z."""
    t = np.asarray(z_true_um, dtype=float)
    p = np.asarray(z_pred_um, dtype=float)
    fig = _figure((10.0, 4.0))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.scatter(t, p, s=4, alpha=0.4, label="CNN")
    if t.size:
        lo, hi = float(np.min(t)), float(np.max(t))
        ax1.plot([lo, hi], [lo, hi], color="k", lw=0.8)
    ax1.set_xlabel("true z (um)")
    ax1.set_ylabel("predicted z (um)")
    ax1.set_title("Prediction vs truth")
    series = {"CNN": p, **{k: np.asarray(v, dtype=float) for k, v in (baselines or {}).items()}}
    zs = np.unique(np.round(t, 3))
    for name, pred in series.items():
        a = np.abs(pred - t)
        med = [
            np.nanmedian(a[np.round(t, 3) == z]) if np.any(np.round(t, 3) == z) else np.nan
            for z in zs
        ]
        ax2.plot(zs, med, marker=".", label=name)
    ax2.axhline(1.0, color="green", lw=0.8, ls="--")
    ax2.set_xlabel("true z (um)")
    ax2.set_ylabel("median |error| (um)")
    ax2.set_title("Error by true z")
    ax2.legend(fontsize="small")
    return _maybe_save(fig, path)


def _records(records: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for r in records:
        if isinstance(r, Mapping):
            out.append(dict(r))
        elif hasattr(r, "__dataclass_fields__"):
            out.append({k: getattr(r, k) for k in r.__dataclass_fields__})
        elif isinstance(r, (tuple, list)) and len(r) >= 2:
            out.append(
                {
                    "step": r[0],
                    "loss": r[1],
                    "val_median_abs_error_um": r[2] if len(r) > 2 else None,
                }
            )
        else:
            out.append(dict(vars(r)))
    return out


def training_curves(
    records: Sequence[Any], *, path: str | os.PathLike[str] | None = None
) -> Figure:
    """Loss and validation metrics against training step.

    ``records``: dicts (or dataclasses / ``(step, loss, val)`` tuples) with ``step``,
    ``loss`` and optionally ``val_median_abs_error_um`` and ``val_within_1um``. Missing
    or ``None`` values are skipped (validation runs less often than training steps).
    """
    recs = _records(records)
    fig = _figure((10.0, 4.0))
    ax1, ax2 = fig.subplots(1, 2)

    def series(key: str) -> tuple[np.ndarray, np.ndarray]:
        pts = [
            (r["step"], r[key])
            for r in recs
            if r.get(key) is not None and r.get("step") is not None and np.isfinite(float(r[key]))
        ]
        if not pts:
            return np.empty(0), np.empty(0)
        a = np.asarray(pts, dtype=float)
        return a[:, 0], a[:, 1]

    s, loss = series("loss")
    ax1.plot(s, loss, lw=0.8, label="training loss")
    ax1.set_xlabel("step")
    ax1.set_ylabel("cross-entropy")
    ax1.set_title("Training loss")
    if loss.size and np.all(loss > 0):
        ax1.set_yscale("log")
    s, med = series("val_median_abs_error_um")
    ax2.plot(s, med, marker="o", color="C1", label="val median |error| (um)")
    ax2.set_xlabel("step")
    ax2.set_ylabel("median |error| (um)")
    ax2.set_title("Validation")
    s, w1 = series("val_within_1um")
    if w1.size:
        ax3 = ax2.twinx()
        ax3.plot(s, w1, marker="s", color="C2", label="val within 1 um")
        ax3.set_ylabel("fraction within 1 um")
        ax3.set_ylim(0, 1)
        ax3.legend(loc="upper right", fontsize="small")
    ax2.legend(loc="upper left", fontsize="small")
    return _maybe_save(fig, path)


#: The files :func:`save_evaluation_plots` writes, each with the bytes it starts with. An
#: existing file that starts otherwise is not an earlier evaluation: ``zfocus eval`` refuses
#: to replace it (``napari_zfocus.outputs``).
EVALUATION_FILES: dict[str, bytes] = {
    "error_histogram.png": b"\x89PNG\r\n\x1a\n",
    "confusion.png": b"\x89PNG\r\n\x1a\n",
    "error_vs_true_z.png": b"\x89PNG\r\n\x1a\n",
    "per_image_errors.csv": b"stack,slice,",
    "confusion_matrix.csv": b"true_z_um \\ predicted_z_um,",
}


def save_evaluation_plots(result: Any, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the evaluation PNGs and CSVs of an :class:`EvaluationResult` into ``out_dir``.

    Files: ``error_histogram.png``, ``confusion.png``, ``error_vs_true_z.png``,
    ``per_image_errors.csv``, ``confusion_matrix.csv``.
    """
    from napari_zfocus.inspection.evaluation import write_confusion_csv, write_per_image_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = result.per_image["z_true_um"].astype(float)
    p = result.per_image["z_pred_um"].astype(float)
    base_err = {k: v - t for k, v in result.baseline_predictions.items()}
    written = [
        save_figure(error_histogram(p - t, baselines=base_err), out / "error_histogram.png"),
        save_figure(
            confusion_heatmap(result.confusion, result.bin_centres_um), out / "confusion.png"
        ),
        save_figure(
            error_vs_true_z(t, p, baselines=result.baseline_predictions),
            out / "error_vs_true_z.png",
        ),
        write_per_image_csv(result, out / "per_image_errors.csv"),
        write_confusion_csv(result, out / "confusion_matrix.csv"),
    ]
    return written
