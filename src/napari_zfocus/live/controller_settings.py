"""Settings, decisions and decision reasons of the focus controller (plain data).

Kept apart from :mod:`~napari_zfocus.live.controller` so the widgets, the CLI and the
decision-log readers can use them without the controller's logic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np

from napari_zfocus.model.calibration import FLAG_BELOW_CONFIDENCE
from napari_zfocus.validation import check_interval, check_number

#: Largest step anyone could mean, um: a typo beyond it is refused.
MAX_DISTANCE_UM = 1000.0
#: Largest focus position, um (10 mm: more than any objective's travel).
MAX_POSITION_UM = 10_000.0

# Reasons recorded in the decision log (stable strings: scripts and the GUI key on them).
MOVED = "moved"
MOVED_CLAMPED = "moved_clamped"  # the step was cut to max_step_um or to the z limits
IN_DEAD_BAND = "in_dead_band"
NOT_LOCKED = "not_locked"
LOW_CONFIDENCE = "low_confidence"
BIMODAL = "bimodal"
#: The frame does not look like the model's training images at the z it reads (the
#: model's OOD check; see napari_zfocus.model.ood): another microscope, sample or pixel size.
OUT_OF_DISTRIBUTION = "out_of_distribution"
BLANK_FRAME = "blank_frame"
STAGE_BUSY = "stage_busy"
AT_LIMIT = "at_limit"
LOCKED = "locked"
CAMERA_ERROR = "camera_error"
MODEL_ERROR = "model_error"
PREDICTION_NAN = "prediction_nan"
STAGE_ERROR = "stage_error"
STAGE_TIMEOUT = "stage_timeout"
STOPPED = "stopped"
OUTSIDE_LIMITS = "outside_limits"  # stage outside its limits; the correction points away
NO_ALLOWED_RANGE = "no_allowed_range"  # the limits and the travel window do not overlap
INVALID_SETTINGS = "invalid_settings"  # settings edited into something impossible
FAILURES = (CAMERA_ERROR, MODEL_ERROR, PREDICTION_NAN, STAGE_ERROR, STAGE_TIMEOUT)


class PredictorLike(Protocol):
    """Anything with :meth:`napari_zfocus.model.inference.Predictor.predict`'s signature."""

    def predict(self, image: np.ndarray, pixel_size_um: float) -> Any: ...


@dataclass
class ControllerSettings:
    """Settings of :class:`FocusController` (distances in um).

    Attributes
    ----------
    dead_band_um
        No move while ``|estimate - locked|`` is within this (the paper used 1 um).
    gain
        Fraction of the error corrected per move (0 < gain <= 1).
    smoothing
        Exponential smoothing of the absolute focus position, 0 (none) .. <1 (heavy).
    max_step_um
        Largest single move; larger corrections are cut to this.
    z_limits_um
        Absolute limits of the focus drive for the controller, or None for the
        microscope's own limits (the tighter of both applies).
    max_travel_um
        Largest distance from the stage position at which focus was locked (None: no
        limit). Caps the damage of a model that is confidently wrong on an unfamiliar
        sample: the stage cannot run away to the drive's end. The paper's 24 h run
        drifted 40 um.
    min_confidence
        Hold when the prediction's confidence is below this (for a calibrated model the
        probability that its estimate is within +/-1 um).
    hold_on_bimodal
        Hold when the softmax is bimodal.
    hold_on_ood
        Hold when the model flags the frame as out of distribution (calibrated models
        only; an uncalibrated model has no such check).
    max_failures
        Stop after this many consecutive failures.
    max_busy_frames
        A stage still busy after this many consecutive frames counts as a failure.
    lock_frames
        Frames whose median estimate :meth:`FocusController.lock` stores.
    max_log
        Decisions kept in memory (oldest dropped first; counters keep counting).
    """

    dead_band_um: float = 0.5
    gain: float = 1.0
    smoothing: float = 0.0
    max_step_um: float = 3.0
    z_limits_um: tuple[float, float] | None = None
    max_travel_um: float | None = 75.0
    min_confidence: float = FLAG_BELOW_CONFIDENCE
    hold_on_bimodal: bool = True
    hold_on_ood: bool = True
    max_failures: int = 5
    max_busy_frames: int = 50
    lock_frames: int = 3
    max_log: int = 1_000_000

    def validate(self) -> None:
        """Raise :class:`ZFocusError` on an impossible setting (the field is named)."""
        check_number(self.dead_band_um, "dead band (um)", lo=0)  # huge = never move: safe
        check_number(self.gain, "gain", lo=0, lo_open=True, hi=1)
        check_number(self.smoothing, "smoothing", lo=0, hi=1, hi_open=True)
        check_number(self.max_step_um, "max step (um)", lo=0, lo_open=True, hi=MAX_DISTANCE_UM)
        if self.z_limits_um is not None:
            check_interval(self.z_limits_um, "z limits (um)", lo=-MAX_POSITION_UM,
                           hi=MAX_POSITION_UM)
        if self.max_travel_um is not None:
            check_number(self.max_travel_um, "max travel (um)", lo=0, lo_open=True,
                         hi=MAX_POSITION_UM)
        check_number(self.min_confidence, "min confidence", lo=0, hi=1)
        check_number(self.max_failures, "max failures", lo=1, integer=True)
        check_number(self.max_busy_frames, "max busy frames", lo=1, integer=True)
        check_number(self.lock_frames, "lock frames", lo=1, hi=1000, integer=True)
        check_number(self.max_log, "max log", lo=1, integer=True)


@dataclass(slots=True)
class Decision:
    """One step of the controller: what it saw, what it did and why."""

    index: int
    time_s: float
    stage_z_um: float  # focus drive position when the frame was taken
    estimate_um: float  # model estimate (nan when there was none)
    confidence: float
    bimodal: bool
    locked_um: float  # the locked estimate (nan when not locked)
    error_um: float  # correction still needed: smoothed (estimate - lock) at the current z
    move_um: float  # the move started (0 for a hold)
    target_z_um: float  # where the stage was sent (its position on a hold)
    action: str  # "move", "hold", "lock" or "stop"
    reason: str
    failures: int  # consecutive failures after this step
    true_defocus_um: float = math.nan  # from the frame metadata (simulation only)
    message: str = ""


DECISION_COLUMNS = tuple(f.name for f in fields(Decision))
