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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from napari_zfocus._atomic import atomic_open
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller_settings import (
    AT_LIMIT,
    CAMERA_ERROR,
    DECISION_COLUMNS,
    FAILURES,
    IN_DEAD_BAND,
    INVALID_SETTINGS,
    LOCKED,
    MOVED,
    MOVED_CLAMPED,
    NO_ALLOWED_RANGE,
    NOT_LOCKED,
    OUTSIDE_LIMITS,
    STAGE_BUSY,
    STAGE_ERROR,
    STAGE_TIMEOUT,
    STOPPED,
    ControllerSettings,
    Decision,
    PredictorLike,
)
from napari_zfocus.live.frame_reading import Estimate, metadata_float, read_frame
from napari_zfocus.live.microscope import Frame, Microscope
from napari_zfocus.live.stage_safety import (
    distance_to_range,
    is_safe_move,
    safe_target,
    usable_range,
)

#: Moves shorter than this (um) are not sent: far below any focus drive's resolution.
MIN_MOVE_UM = 1e-9


class FocusController:
    """Keep the model's z estimate at the locked value by moving the focus drive.

    Parameters
    ----------
    predictor
        Object with ``predict(image, pixel_size_um)`` returning something with
        ``z_um``, ``confidence`` and ``bimodal`` (a
        :class:`~napari_zfocus.model.inference.Prediction`).
    microscope
        Any :class:`~napari_zfocus.live.microscope.Microscope`.
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
        if not math.isfinite(stage_z):
            # The travel window is centred on this position: without it there is no lock.
            raise ZFocusError("cannot lock focus: the focus position cannot be read")
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
        common = dict(
            time_s=frame.timestamp_s,
            stage_z_um=frame.stage_z_um,
            true_defocus_um=metadata_float(frame, "true_defocus_um"),
        )

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
        if self.locked_um is None or est is None:
            return self._hold(NOT_LOCKED, "", **common, **values)
        return self._correct(frame, est, common, values)

    def _correct(
        self, frame: Frame, est: Estimate, common: dict[str, Any], values: dict[str, Any]
    ) -> Decision:
        """Decide the move for a usable, locked estimate; every move passes the safety rule
        of :mod:`~napari_zfocus.live.stage_safety`, whatever the state or fault."""
        s = self.settings
        problem = self._settings_problem()
        if problem:
            return self._hold(INVALID_SETTINGS, problem, **common, **values)
        if not math.isfinite(frame.stage_z_um):
            return self._fail(STAGE_ERROR, "the frame has no finite focus position",
                              **common, **values)
        try:  # a failed read is a failure: it must never turn into a target
            current = float(self.microscope.get_z())
        except Exception as exc:  # noqa: BLE001 - any stage failure is a failure
            return self._fail(STAGE_ERROR, f"cannot read the focus position: {exc}",
                              **common, **values)
        if not math.isfinite(current):
            return self._fail(STAGE_ERROR, f"the focus position reads {current!r}",
                              **common, **values)
        assert self.locked_um is not None  # checked by the caller
        # Where the stage should be for the estimate to equal the locked value.
        focus_z = frame.stage_z_um + (est.z_um - self.locked_um)
        if self._focus_z is None or s.smoothing == 0:
            self._focus_z = focus_z
        else:
            self._focus_z = s.smoothing * self._focus_z + (1 - s.smoothing) * focus_z
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
        return self._move(current, current + s.gain * error, common, values)

    def _move(
        self, current: float, desired: float, common: dict[str, Any], values: dict[str, Any]
    ) -> Decision:
        """Send the safe target nearest to ``desired``, or hold with the reason there is none."""
        s = self.settings
        try:
            lo, hi = self.z_limits_um
        except Exception as exc:  # noqa: BLE001 - a microscope whose limits cannot be read
            return self._fail(STAGE_ERROR, f"cannot read the focus limits: {exc}",
                              **common, **values)
        if not usable_range(lo, hi):
            return self._hold(NO_ALLOWED_RANGE, f"limits [{lo:g}, {hi:g}] um leave no range",
                              **common, **values)
        target = safe_target(current, desired, lo, hi, s.max_step_um)
        outside = distance_to_range(current, lo, hi) > 0
        if target is None or abs(target - current) < MIN_MOVE_UM:
            if outside:  # and the correction points away from the range: never further out
                return self._hold(
                    OUTSIDE_LIMITS,
                    f"stage at {current:.2f} um is outside [{lo:g}, {hi:g}] um",
                    **common, **values,
                )
            if abs(desired - current) < MIN_MOVE_UM:  # a tiny gain: nothing to do, no limit hit
                return self._hold(IN_DEAD_BAND, f"correction below {MIN_MOVE_UM:g} um",
                                  **common, **values)
            return self._hold(AT_LIMIT, f"limits [{lo:g}, {hi:g}] um", **common, **values)
        if not is_safe_move(current, target, lo, hi, s.max_step_um):  # pragma: no cover
            # safe_target guarantees this; the check keeps a future edit from moving unsafely.
            return self._hold(INVALID_SETTINGS, "refused an unsafe move", **common, **values)
        try:
            self.microscope.move_z_to(target)
        except Exception as exc:  # noqa: BLE001 - the stage refused or failed
            return self._fail(STAGE_ERROR, str(exc), **common, **values)
        move = target - current
        self.max_abs_move_um = max(self.max_abs_move_um, abs(move))
        self.failures = 0
        clamped = abs(target - desired) > MIN_MOVE_UM
        return self._record(
            **common, **values, move_um=move, target_z_um=target, action="move",
            reason=MOVED_CLAMPED if clamped else MOVED,
            message=f"walking back into [{lo:g}, {hi:g}] um" if outside else "",
        )

    def _settings_problem(self) -> str:
        """Why the (possibly edited) settings are unusable, or "" (checked every step:
        a dock or a script may change them while the loop runs)."""
        try:
            self.settings.validate()
        except ZFocusError as exc:
            return str(exc)
        return ""

    def _estimate(self, frame: Frame) -> tuple[Estimate | None, str | None, str]:
        """Run the model on a frame: (estimate, hold/failure reason or None, message)."""
        return read_frame(frame, self.predictor, self.microscope.pixel_size_um, self.settings)

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
    "metadata_float",
]
