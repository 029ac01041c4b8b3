"""The one metrics table: a model's errors beside its readouts and baselines, without Qt.

An evaluation gives one set of metrics per *method*: the CNN (expected-value readout), the
CNN with the paper's argmax readout, and each focus-score baseline. This module is the only
place that orders those methods and formats their metrics, for every consumer:

* :func:`metrics_table` -- short headers and cells for the inspection dock's table;
* :func:`write_metrics_csv` -- ``metrics.csv`` (one row per metric, one column per method);
* :func:`text_table` -- the readable table ``zfocus eval`` prints (its layout is relied on
  by scripts: labels, widths and formats must not change).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from napari_zfocus._atomic import atomic_open

__all__ = [
    "METRIC_ROWS",
    "TEXT_ROWS",
    "method_columns",
    "metrics_table",
    "text_table",
    "write_metrics_csv",
]

#: Metrics of the dock's table and of ``metrics.csv``, in order: (key, header, description).
METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("n_images", "n", "test images"),
    ("within_1um", "<=1um", "fraction of images within +/-1 um"),
    ("median_abs_error_um", "median", "median |error|, um"),
    ("mean_abs_error_um", "mean", "mean |error|, um"),
    ("p90_abs_error_um", "p90", "90th percentile of |error|, um"),
    ("mse_um2", "MSE", "mean squared error, um^2"),
    ("bias_um", "bias", "mean (predicted - true), um"),
    ("ece", "ECE", "calibration error of the confidence for |error| <= 1 um (CNN only)"),
    ("flagged", "flagged", "fraction flagged: low confidence or out of distribution (CNN only)"),
    ("sign_accuracy", "sign", "fraction placed on the right side of focus (CNN only)"),
)

#: Metrics of the CLI's text table, in order: (key, row label, format).
TEXT_ROWS: tuple[tuple[str, str, str], ...] = (
    ("n_images", "images", "{:d}"),
    ("median_abs_error_um", "median |error| (um)", "{:.2f}"),
    ("within_1um", "within 1 um", "{:.1%}"),
    ("mse_um2", "MSE (um^2)", "{:.2f}"),
    ("bias_um", "bias (um)", "{:+.2f}"),
    ("sign_accuracy", "sign accuracy", "{:.1%}"),
    # Appended (the rows above are relied on by scripts): the CNN's confidence.
    ("ece", "ECE (+/-1 um)", "{:.3f}"),
    ("flagged", "flagged", "{:.1%}"),
)

#: Metrics shown as percentages in the dock.
_FRACTIONS = {"within_1um", "sign_accuracy", "flagged"}


def method_columns(
    metrics: Mapping[str, Any],
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    always_argmax: bool = False,
) -> list[tuple[str, Mapping[str, Any]]]:
    """``(method name, metrics)`` of the CNN, its argmax readout, then each baseline.

    Parameters
    ----------
    metrics
        The CNN's metrics; its ``"argmax"`` entry holds the argmax readout's.
    baselines
        ``{name: metrics}`` of the focus-score baselines.
    always_argmax
        Keep the argmax column even when there is no argmax record (empty metrics); the
        CLI's table always has it, the dock shows it only when present.
    """
    columns: list[tuple[str, Mapping[str, Any]]] = [("CNN", metrics)]
    argmax = metrics.get("argmax")
    if isinstance(argmax, Mapping):
        columns.append(("CNN argmax", argmax))
    elif always_argmax:
        columns.append(("CNN argmax", {}))
    columns += list((baselines or {}).items())
    return columns


def _percent(value: Any) -> str:
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{100 * float(value):.0f}%"


def format_value(value: Any) -> str:
    """A metric (or metadata) value for the dock: integers as is, floats to 3 digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "-" if not math.isfinite(v) else f"{v:.3g}"
    return str(value)


def metrics_table(result: Any) -> tuple[list[str], list[str], list[list[str]]]:
    """The CNN above its baselines: ``(method names, metric headers, formatted cells)``.

    One row per method (see :func:`method_columns`), one column per metric of
    :data:`METRIC_ROWS`. ``result`` is an
    :class:`~napari_zfocus.inspection.evaluation.EvaluationResult` (``metrics``, ``baselines``).
    """
    methods = method_columns(result.metrics, result.baselines)
    headers = [short for _, short, _ in METRIC_ROWS]
    cells = [
        [_percent(metrics.get(key)) if key in _FRACTIONS else format_value(metrics.get(key))
         for key, _, _ in METRIC_ROWS]
        for _, metrics in methods
    ]
    return [name.replace("_", " ") for name, _ in methods], headers, cells


def write_metrics_csv(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write the metrics (one row per metric, one column per method) atomically."""
    methods = method_columns(result.metrics, result.baselines)
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["metric", *(name for name, _ in methods)])
        for key, _, _ in METRIC_ROWS:
            row = []
            for _, metrics in methods:
                v = metrics.get(key)
                row.append("" if v is None else (f"{float(v):.6g}" if isinstance(v, float) else v))
            w.writerow([key, *row])
    return Path(path)


def _text_cell(value: Any, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def text_table(summary: Mapping[str, Any]) -> str:
    """Readable table of ``zfocus eval``: CNN (expected value), CNN (argmax), then each baseline.

    ``summary`` is :meth:`EvaluationResult.to_json_dict` (metrics at the top level).
    """
    columns = method_columns(summary, summary.get("baselines"), always_argmax=True)
    widths = [max(9, len(name)) + 2 for name, _ in columns]
    lines = ["metric".ljust(22) + "".join(
        name.rjust(w) for (name, _), w in zip(columns, widths, strict=True))]
    for key, label, fmt in TEXT_ROWS:
        cells = (_text_cell(m.get(key), fmt) for _, m in columns)
        lines.append(
            label.ljust(22) + "".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
        )
    if summary.get("baselines"):
        lines.append("(baselines: the sign is taken from the truth, as in the paper)")
    return "\n".join(lines)
