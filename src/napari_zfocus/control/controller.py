"""The focus lock: estimate the sample's z from each frame, and move the focus drive.

Wei & Roberts (2018) let the user lock the focus on the current estimate; then, for every
live frame, the CNN estimates the sample z and the objective moves whenever the estimate
leaves a band of +/-1 um around the locked value. :class:`FocusController` does that
with the safety a microscope needs:

* a dead-band (default +/-0.5 um) so noise does not make the stage chatter;
* optional smoothing of the estimates and a gain below 1;
* a maximum step per correction and absolute z limits (the move is clamped to both);
* no move while the stage is still busy, on a low-confidence or bimodal softmax (cells on
  the chamber floor AND ceiling: the wrong mode can win), or on a blank frame;
* a safe stop after repeated failures (camera error, NaN or failing model, stage error or
  stage timeout): from then on it never moves again until :meth:`FocusController.resume`.

Smoothing works on *absolute* focus positions (stage z + estimate - locked estimate,
i.e. "where the stage should be"), which a move does not change; so moving never corrupts
the smoothing state.

Every decision is recorded and can be exported as CSV.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from napari_zfocus._atomic import atomic_open
from napari_zfocus.control.microscope import Frame, Microscope
from napari_zfocus.errors import ZFocusError

# Reasons recorded in the decision log (stable strings: scripts and the GUI key on them).
MOVED = "moved"
MOVED_CLAMPED = "moved_clamped"  # the step was cut to max_step_um or to the z limits
IN_DEAD_BAND = "in_dead_band"
NOT_LOCKED = "not_locked"
LOW_CONFIDENCE = "low_confidence"
BIMODAL = "bimodal"
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
        Hold when the prediction's confidence is below this.
    hold_on_bimodal
        Hold when the softmax is bimodal.
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
    min_confidence: float = 0.3
    hold_on_bimodal: bool = True
    max_failures: int = 5
    max_busy_frames: int = 50
    lock_frames: int = 3
    max_log: int = 1_000_000

    def validate(self) -> None:
        """Raise :class:`ZFocusError` on an impossible setting."""
        if not (self.dead_band_um >= 0 and math.isfinite(self.dead_band_um)):
            raise ZFocusError(f"dead band must be >= 0 um, got {self.dead_band_um}")
        if not 0 < self.gain <= 1:
            raise ZFocusError(f"gain must be in (0, 1], got {self.gain}")
        if not 0 <= self.smoothing < 1:
            raise ZFocusError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if not (self.max_step_um > 0 and math.isfinite(self.max_step_um)):
            raise ZFocusError(f"max step must be a positive number of um, got {self.max_step_um}")
        if self.z_limits_um is not None and not self.z_limits_um[0] < self.z_limits_um[1]:
            raise ZFocusError(f"z limits must be increasing, got {self.z_limits_um}")
        if self.max_travel_um is not None and not (
            self.max_travel_um > 0 and math.isfinite(self.max_travel_um)
        ):
            raise ZFocusError(f"max travel must be a positive number of um, got {self.max_travel_um}")
        if not 0 <= self.min_confidence <= 1:
            raise ZFocusError(f"min confidence must be in [0, 1], got {self.min_confidence}")
        if self.max_failures < 1 or self.max_busy_frames < 1 or self.lock_frames < 1:
            raise ZFocusError("max failures, max busy frames and lock frames must be >= 1")


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


@dataclass
class _Estimate:
    z_um: float
    confidence: float
    bimodal: bool


class FocusController:
    """Keep the model's z estimate at the locked value by moving the focus drive.

    Parameters
    ----------
    predictor
        Object with ``predict(image, pixel_size_um)`` returning something with
        ``z_um``, ``confidence`` and ``bimodal`` (a
        :class:`~napari_zfocus.model.inference.Prediction`).
    microscope
        Any :class:`~napari_zfocus.control.microscope.Microscope`.
    settings
        Controller settings (validated).
    """

    def __init__(
        self,
        predictor: PredictorLike,
        microscope: Microscope,
        settings: ControllerSettings | None = None,
    ) -> None:
        self.predictor = predictor
        self.microscope = microscope
        self.settings = settings or ControllerSettings()
        self.settings.validate()
        self.decisions: deque[Decision] = deque(maxlen=self.settings.max_log)
        self.counts: Counter[str] = Counter()  # reason -> number of steps, never truncated
        self.locked_um: float | None = None
        self.stopped = False
        self.stop_reason = ""
        self.failures = 0
        self.max_abs_move_um = 0.0
        self._busy_frames = 0
        self._focus_z: float | None = None  # smoothed absolute focus position
        self._lock_stage_z: float | None = None  # stage z when focus was locked
        self._index = 0

    # -- limits -------------------------------------------------------------------

    @property
    def z_limits_um(self) -> tuple[float, float]:
        """Effective limits: the tightest of the controller's, the microscope's and the
        travel window around the stage position at lock."""
        lo, hi = self.microscope.z_limits_um
        if self.settings.z_limits_um is not None:
            lo = max(lo, self.settings.z_limits_um[0])
            hi = min(hi, self.settings.z_limits_um[1])
        travel = self.settings.max_travel_um
        if travel is not None and self._lock_stage_z is not None and math.isfinite(
            self._lock_stage_z
        ):
            lo = max(lo, self._lock_stage_z - travel)
            hi = min(hi, self._lock_stage_z + travel)
        return float(lo), float(hi)

    # -- locking ------------------------------------------------------------------

    def lock(self, target_z_um: float | None = None) -> Decision:
        """Lock the focus: on ``target_z_um``, or on the current model estimate.

        Without a target, ``settings.lock_frames`` frames are snapped and the median of
        their usable estimates is stored; :class:`ZFocusError` if none is usable (blank
        frames, low confidence, bimodal, NaN, camera errors).
        """
        stage_z = self._safe_get_z()
        t = math.nan
        if target_z_um is None:
            values = []
            for _ in range(self.settings.lock_frames):
                try:
                    frame = self.microscope.snap()
                except Exception:  # noqa: BLE001 - any camera failure: try the next frame
                    continue
                t = frame.timestamp_s
                est, reason, _ = self._estimate(frame)
                if reason is None and est is not None:
                    values.append(est.z_um)
            if not values:
                raise ZFocusError(
                    "cannot lock focus: no usable estimate in "
                    f"{self.settings.lock_frames} frames "
                    "(blank, ambiguous or low-confidence images)"
                )
            target_z_um = float(np.median(values))
        if not math.isfinite(target_z_um):
            raise ZFocusError(f"cannot lock focus on {target_z_um!r}: not a finite number")
        self.locked_um = float(target_z_um)
        self._lock_stage_z = stage_z
        self._focus_z = None
        self.failures = 0
        return self._record(
            time_s=t, stage_z_um=stage_z, estimate_um=self.locked_um, confidence=math.nan,
            bimodal=False, error_um=0.0, move_um=0.0, target_z_um=stage_z, action="lock",
            reason=LOCKED,
        )

    def unlock(self) -> None:
        """Forget the lock; steps then only log estimates."""
        self.locked_um = None
        self._focus_z = None

    def resume(self) -> None:
        """Clear a safe stop and the failure count (the user has fixed the cause)."""
        self.stopped = False
        self.stop_reason = ""
        self.failures = 0
        self._busy_frames = 0
        self._focus_z = None

    # -- one step -----------------------------------------------------------------

    def step(self, frame: Frame | None = None) -> Decision:
        """Take (or use) one frame, estimate z, decide, and maybe start a move."""
        if self.stopped:
            z = self._safe_get_z()
            return self._record(
                time_s=math.nan, stage_z_um=z, target_z_um=z, action="stop", reason=STOPPED,
                message=self.stop_reason, count=False,
            )
        if frame is None:
            try:
                frame = self.microscope.snap()
            except Exception as exc:  # noqa: BLE001 - any camera failure is a failure
                return self._fail(CAMERA_ERROR, str(exc))
        truth = float(frame.metadata.get("true_defocus_um", math.nan))
        common = dict(time_s=frame.timestamp_s, stage_z_um=frame.stage_z_um, true_defocus_um=truth)

        est, reason, message = self._estimate(frame)
        if reason in FAILURES:
            return self._fail(reason, message, **common)
        values = dict(
            estimate_um=est.z_um if est else math.nan,
            confidence=est.confidence if est else math.nan,
            bimodal=est.bimodal if est else False,
        )
        if reason is not None:
            return self._hold(reason, message, **common, **values)
        if self.locked_um is None:
            return self._hold(NOT_LOCKED, "", **common, **values)

        s = self.settings
        # Where the stage should be for the estimate to equal the locked value.
        focus_z = frame.stage_z_um + (est.z_um - self.locked_um)
        if self._focus_z is None or s.smoothing == 0:
            self._focus_z = focus_z
        else:
            self._focus_z = s.smoothing * self._focus_z + (1 - s.smoothing) * focus_z
        current = self._safe_get_z()
        error = self._focus_z - current
        values["error_um"] = error
        if abs(error) <= s.dead_band_um:
            self._busy_frames = 0
            return self._hold(IN_DEAD_BAND, "", **common, **values)
        try:
            busy = bool(self.microscope.is_busy())
        except Exception as exc:  # noqa: BLE001
            return self._fail(STAGE_ERROR, f"busy query failed: {exc}", **common, **values)
        if busy:
            self._busy_frames += 1
            if self._busy_frames >= s.max_busy_frames:
                return self._fail(
                    STAGE_TIMEOUT, f"stage busy for {self._busy_frames} frames", **common, **values
                )
            return self._hold(STAGE_BUSY, "", **common, **values)
        self._busy_frames = 0

        step = s.gain * error
        clamped = abs(step) > s.max_step_um
        step = float(np.clip(step, -s.max_step_um, s.max_step_um))
        lo, hi = self.z_limits_um
        target = float(np.clip(current + step, lo, hi))
        clamped |= target != current + step
        move = target - current
        if abs(move) < 1e-9:
            return self._hold(AT_LIMIT, f"limits [{lo:g}, {hi:g}] um", **common, **values)
        try:
            self.microscope.move_z_to(target)
        except Exception as exc:  # noqa: BLE001 - the stage refused or failed
            return self._fail(STAGE_ERROR, str(exc), **common, **values)
        self.max_abs_move_um = max(self.max_abs_move_um, abs(move))
        self.failures = 0
        return self._record(
            **common, **values, move_um=move, target_z_um=target, action="move",
            reason=MOVED_CLAMPED if clamped else MOVED,
        )

    def _estimate(self, frame: Frame) -> tuple[_Estimate | None, str | None, str]:
        """Run the model on a frame: (estimate, hold/failure reason or None, message)."""
        image = np.asarray(frame.image)
        if image.ndim != 2 or image.size == 0:
            return None, CAMERA_ERROR, f"frame has shape {image.shape}, expected (Y, X)"
        finite_range = float(np.ptp(image)) if np.issubdtype(image.dtype, np.integer) else None
        if finite_range is None:
            if not np.all(np.isfinite(image)):
                return None, CAMERA_ERROR, "frame contains NaN or infinite pixels"
            finite_range = float(np.ptp(image))
        if finite_range == 0:
            return None, BLANK_FRAME, "all pixels are equal"
        try:
            pred = self.predictor.predict(image, self.microscope.pixel_size_um)
        except Exception as exc:  # noqa: BLE001 - a failing model is a failure, not a crash
            return None, MODEL_ERROR, f"{type(exc).__name__}: {exc}"
        z = float(getattr(pred, "z_um", math.nan))
        conf = float(getattr(pred, "confidence", math.nan))
        est = _Estimate(z, conf, bool(getattr(pred, "bimodal", False)))
        if not (math.isfinite(z) and math.isfinite(conf)):
            return est, PREDICTION_NAN, "model returned a non-finite estimate"
        if est.bimodal and self.settings.hold_on_bimodal:
            return est, BIMODAL, "two competing focal planes"
        if conf < self.settings.min_confidence:
            floor = self.settings.min_confidence
            return est, LOW_CONFIDENCE, f"confidence {conf:.2f} < {floor:.2f}"
        return est, None, ""

    # -- bookkeeping --------------------------------------------------------------

    def _safe_get_z(self) -> float:
        try:
            return float(self.microscope.get_z())
        except Exception:  # noqa: BLE001 - only for logging; moves check separately
            return math.nan

    def _hold(self, reason: str, message: str, **values: Any) -> Decision:
        self.failures = 0  # a step without failure ends a chain of failures
        z = values.pop("stage_z_um", self._safe_get_z())
        return self._record(
            stage_z_um=z, target_z_um=self._safe_get_z(), move_um=0.0, action="hold",
            reason=reason, message=message, **values,
        )

    def _fail(self, reason: str, message: str, **values: Any) -> Decision:
        self.failures += 1
        action = "hold"
        if self.failures >= self.settings.max_failures:
            # Safe stop: never move again; the stage stays where it is.
            self.stopped = True
            self.stop_reason = f"{self.failures} failures in a row, last: {reason}: {message}"
            action = "stop"
        z = values.pop("stage_z_um", self._safe_get_z())
        return self._record(
            stage_z_um=z, target_z_um=self._safe_get_z(), move_um=0.0, action=action,
            reason=reason, message=message, **values,
        )

    def _record(self, count: bool = True, **values: Any) -> Decision:
        values.setdefault("estimate_um", math.nan)
        values.setdefault("confidence", math.nan)
        values.setdefault("bimodal", False)
        values.setdefault("error_um", math.nan)
        values.setdefault("move_um", 0.0)
        values.setdefault("time_s", math.nan)
        values["locked_um"] = math.nan if self.locked_um is None else self.locked_um
        decision = Decision(index=self._index, failures=self.failures, **values)
        self._index += 1
        self.decisions.append(decision)
        if count:
            self.counts[decision.reason] += 1
        return decision

    # -- export -------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts of moves and holds by reason, the largest move, and the stop state."""
        moves = self.counts[MOVED] + self.counts[MOVED_CLAMPED]
        holds = {
            r: n for r, n in sorted(self.counts.items()) if r not in (MOVED, MOVED_CLAMPED, LOCKED)
        }
        return {
            "moves": moves,
            "holds": holds,
            "max_step_um": self.max_abs_move_um,
            "stopped": self.stopped,
            "stop_reason": self.stop_reason,
        }

    def export_csv(self, path: str | Path) -> Path:
        """Write the decision log as CSV (atomically); one row per decision."""
        path = Path(path)
        with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=DECISION_COLUMNS)
            writer.writeheader()
            for d in self.decisions:
                writer.writerow(asdict(d))
        return path


__all__ = [
    "DECISION_COLUMNS",
    "ControllerSettings",
    "Decision",
    "FocusController",
    "PredictorLike",
]
