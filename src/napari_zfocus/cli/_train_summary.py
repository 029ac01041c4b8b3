"""What ``zfocus train`` prints when it ends: one JSON object (``--json``) or a few lines.

Besides the budget used and the validation metrics, the summary says what the metrics were
computed on (``validation_on``: held-out stacks, or the training stacks when there were
too few to hold any out), the model the run started from and its validation before the
first step, and which step's weights the model file holds (``kept_step``, ``kept``).
"""

from __future__ import annotations

from typing import Any

from napari_zfocus._json import to_json_line


def format_metrics(m: dict[str, float]) -> str:
    """One line of validation metrics (or why there are none)."""
    if not m:
        return "no validation (no held-out stacks)"
    return (
        f"median |error| {m['median_abs_error_um']:.2f} um, "
        f"within +/-1 um {100 * m['within_1um']:.1f}% "
        f"({int(m['n_images'])} images; argmax readout: "
        f"{m['argmax_median_abs_error_um']:.2f} um, {100 * m['argmax_within_1um']:.1f}%)"
    )


def summary(last: Any) -> dict[str, Any]:
    """The summary of a run's last event (``done`` or ``cancelled``), as the JSON says it."""
    info = last.run_info
    return {
        "model": last.model_path,
        "checkpoint": last.checkpoint_path,
        "steps": last.step,
        "elapsed_s": round(last.elapsed_s, 1),
        "images_per_s": round(last.images_per_s or 0.0, 1),
        "cancelled": last.kind == "cancelled",
        "validation": last.metrics,
        "calibration": last.calibration or None,
        "validation_on": info.get("validation_on"),
        "start_model": info.get("start_model"),
        "start_validation": info.get("start_validation") or None,
        "kept_step": info.get("kept_step"),
        "kept": info.get("kept"),
        "stopped_early": info.get("stopped_early") or None,
    }


def _lines(s: dict[str, Any], message: str) -> list[str]:
    lines = [
        f"model: {s['model']} (checkpoint {s['checkpoint']})",
        f"steps: {s['steps']} in {s['elapsed_s']:.0f} s ({s['images_per_s']:.1f} images/s)",
        f"validation: {format_metrics(s['validation'])}"
        + (f" on {s['validation_on']}" if s["validation_on"] else ""),
    ]
    start = s["start_model"]
    if start:
        before = s["start_validation"]
        lines.append(f"started from: {start.get('spec')} ({start.get('file')})"
                     + (f"; before fine-tuning: {format_metrics(before)}" if before else ""))
    if s["kept"]:
        lines.append(f"model weights: {s['kept']}")
    if s["stopped_early"]:
        lines.append(s["stopped_early"])
    if message:
        lines.append(message)
    if s["cancelled"]:
        lines.append("stopped early: continue with --resume")
    return lines


def print_summary(last: Any, as_json: bool, stopped_code: int = 130) -> int:
    """Print the final summary; returns ``stopped_code`` when cancelled, else 0."""
    s = summary(last)
    if as_json:
        print(to_json_line(s))
    else:
        print("\n".join(_lines(s, last.message)))
    return stopped_code if s["cancelled"] else 0
