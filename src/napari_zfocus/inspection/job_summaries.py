"""One status line per inspection job: what the dock shows when a job reports or ends.

Qt-free, so the lines are tested without a GUI; the tabs in ``_qt/`` only display them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["calibration_summary", "evaluation_summary", "progress_text", "rescale_summary"]


def evaluation_summary(result: Any) -> str:
    """One status line for an evaluation, e.g. ``"14 images; 64% within +/-1 um"``."""
    m = result.metrics
    note = " (cancelled: partial result)" if result.cancelled else ""
    within = m.get("within_1um")
    return f"{m.get('n_images', 0)} images{note}; " + (
        f"{100 * within:.0f}% within +/-1 um" if within is not None else "no images"
    )


def rescale_summary(rescaled: Any) -> str:
    """One status line for a finished rescale (``jobs.Rescaled``; None: cancelled)."""
    if rescaled is None:
        return "Cancelled: nothing written."
    fitted = rescaled.scale.fitted
    if fitted.get("source") == "condenser aperture":
        return (f"Condenser aperture {fitted['condenser_na']:g} against the model's reference "
                f"{fitted['reference_condenser_na']:g}: readings divided by "
                f"{rescaled.scale.gain:.2f}. Saved as {rescaled.loaded.path} and loaded.")
    head = (f"Reads {fitted['measured_gain']:.2f}x the true distance on "
            f"{fitted['stacks_fitted']} of {fitted['stacks']} stacks: ")
    what = (f"readings divided by {rescaled.scale.gain:.2f}" if fitted["applied"] else
            f"within {fitted['threshold']:.2f} of 1, no measurable change of setting")
    return head + what + f". Saved as {rescaled.loaded.path} and loaded."


def calibration_summary(calibrated: Any) -> str:
    """One status line for a finished calibration (``jobs.Calibrated``; None: cancelled)."""
    if calibrated is None:
        return "Cancelled: nothing written."
    from napari_zfocus.training.calibration_fit import describe_calibration

    c = calibrated.calibration
    return (f"{describe_calibration(c.fitted, c.temperature)}. Saved as "
            f"{calibrated.loaded.path} and loaded.")


def progress_text(event: Any) -> str:
    """One status line for an evaluation progress event."""
    return f"{event.stage}: {event.done}/{event.total} {event.message}"
