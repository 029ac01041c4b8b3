"""One refocus of one position, over any microscope: lock, correct, confirm, or fall back.

The acquisition engine calls :meth:`Refocuser.refocus` once per position and time point,
with the focus channel already set. Each position gets its own
:class:`~napari_zfocus.live.controller.FocusController`, so every correction obeys the
live controller's rules (max step, absolute limits, a travel window around the position's
z at its first visit, confidence and bimodal gating) and its stage-safety invariant; this
module only decides how many frames to take and what to do when none is usable.

No pymmcore-plus here: the microscope is anything with the
:class:`~napari_zfocus.live.microscope.Microscope` methods, so the logic is tested with
fakes and runs the same on a real core.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_zfocus.acquisition.focus_drive import FrameCounter, torch_threads, walk_to
from napari_zfocus.acquisition.scan_focus import scan_focus
from napari_zfocus.acquisition.settings import (
    CORRECTED,
    HELD,
    IN_FOCUS,
    LOCKED,
    NOT_FOCUSED,
    SCANNED,
    SKIPPED,
    AutofocusSettings,
    FocusRecord,
)
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller import FocusController
from napari_zfocus.live.controller_settings import (
    IN_DEAD_BAND,
    LOW_CONFIDENCE,
    MOVED,
    MOVED_CLAMPED,
    OUT_OF_DISTRIBUTION,
    Decision,
    PredictorLike,
)
from napari_zfocus.live.microscope import Microscope

_MOVED = (MOVED, MOVED_CLAMPED)
#: Holds that a frame at another z may lift: the image, not the camera or the stage, was
#: the problem.
_PROBE_AFTER = (OUT_OF_DISTRIBUTION, LOW_CONFIDENCE)


@dataclass
class PositionState:
    """What the refocus knows about one position."""

    controller: FocusController
    planned_z_um: float | None  # the position's z in the sequence (None: not given)
    focus_z_um: float | None = None  # the in-focus z after the last good refocus
    locked: bool = False


class Refocuser:
    """Refocus positions one at a time with one CNN frame (or a scan), safely.

    Parameters
    ----------
    predictor
        The z-position model (:class:`~napari_zfocus.model.inference.Predictor`), or None
        for ``method="scan"`` / ``"none"``.
    microscope
        Camera and focus drive, with the focus channel set by the caller.
    settings
        The autofocus settings (validated here).
    true_focus_um
        Simulation only: the true in-focus z of a position now, to score each refocus.
    """

    def __init__(
        self,
        predictor: PredictorLike | None,
        microscope: Microscope,
        settings: AutofocusSettings,
        *,
        true_focus_um: Callable[[int | None], float] | None = None,
    ) -> None:
        settings.validate()
        if predictor is None and settings.method == "zfocus":
            raise ZFocusError("autofocus method 'zfocus' needs a model")
        self.predictor = predictor
        self.stage = FrameCounter(microscope)
        self.settings = settings
        self.true_focus_um = true_focus_um
        self.positions: dict[int | None, PositionState] = {}
        self.records: list[FocusRecord] = []
        # Per time point: how far the focus of each position refocused so far moved since
        # its previous visit. The plate drifts as one (temperature), so the next position
        # starts its focus frame where the others went: its own correction stays small.
        self._increments: dict[int, list[float]] = {}

    # -- what the engine asks ------------------------------------------------------

    def correction_um(self, p: int | None) -> float:
        """How far position ``p``'s focus has moved from its planned z (0 when unknown)."""
        state = self.positions.get(p)
        if state is None or state.focus_z_um is None or state.planned_z_um is None:
            return 0.0
        return state.focus_z_um - state.planned_z_um

    def user_offset_um(self, p: int | None) -> float:
        """The user's imaging offset of position ``p`` from its locked focus."""
        return self.settings.position_offsets_um.get(p, 0.0) if p is not None else 0.0

    def offset_um(self, p: int | None) -> float:
        """What to add to every planned z of position ``p``: its correction plus the
        user's offset."""
        return self.correction_um(p) + self.user_offset_um(p)

    def approach_z_um(self, p: int | None, t: int | None, planned_z_um: float | None
                      ) -> float | None:
        """Where to take position ``p``'s focus frame at time point ``t``: its last focus
        (or its planned z on a first visit) plus the plate's drift measured at ``t`` so
        far (None: nowhere known, stay)."""
        state = self.positions.get(p)
        if state is None or state.focus_z_um is None:
            return planned_z_um
        return state.focus_z_um + self.feed_forward_um(p, t)

    def feed_forward_um(self, p: int | None, t: int | None) -> float:
        """The median focus change of the positions already refocused at time point ``t``
        (0 when there is none, or when it is not a safe step from ``p``'s last focus)."""
        state = self.positions.get(p)
        moves = self._increments.get(t, []) if t is not None else []
        if state is None or state.focus_z_um is None or not moves:
            return 0.0
        shift = float(np.median(moves))
        lo, hi = state.controller.z_limits_um
        target = state.focus_z_um + shift
        if not (math.isfinite(shift) and abs(shift) <= self.settings.max_step_um
                and lo <= target <= hi):
            return 0.0
        return shift

    def focus_z_um(self, p: int | None) -> float | None:
        """The in-focus z of position ``p`` after its last good refocus (None: unknown)."""
        state = self.positions.get(p)
        return None if state is None else state.focus_z_um

    # -- one refocus ---------------------------------------------------------------

    def refocus(
        self, p: int | None, t: int | None, *, planned_z_um: float | None, name: str = "",
        time_s: float = math.nan,
    ) -> FocusRecord:
        """Refocus position ``p`` at time point ``t`` (the stage is at its expected z)."""
        t0 = time.perf_counter()
        self.stage.reset()
        state = self._state(p, planned_z_um)
        start_z = self._z_or_nan()
        feed_forward = 0.0 if state.focus_z_um is None else start_z - state.focus_z_um
        method = self.settings.method
        if method == "none":
            decision, reason, last = NOT_FOCUSED, "", None
        elif method == "scan":
            decision, reason, last = self._scan(state)
        else:
            with torch_threads(self.settings.inference_threads):
                if not state.locked:
                    decision, reason, last = self._lock(state)
                else:
                    decision, reason, last = self._correct(state)
        if decision in (HELD, SKIPPED) and self.settings.policy == "scan" and method != "scan":
            decision, reason, last = self._scan(state, failed=reason)
        if decision in (LOCKED, CORRECTED, IN_FOCUS, SCANNED):
            previous, state.focus_z_um = state.focus_z_um, self._z_or_nan()
            if state.planned_z_um is None:
                state.planned_z_um = state.focus_z_um
            if previous is not None and t is not None and math.isfinite(state.focus_z_um):
                self._increments.setdefault(t, []).append(state.focus_z_um - previous)
        record = self._record(p, t, name, time_s, decision, reason, last, start_z, t0,
                              feed_forward_um=feed_forward)
        self.records.append(record)
        return record

    def failed(
        self, p: int | None, t: int | None, reason: str, message: str, *,
        planned_z_um: float | None, name: str = "", time_s: float = math.nan,
    ) -> FocusRecord:
        """Record a refocus that could not start (the focus drive failed on the way to
        the position): the policy's hold or skip, no frame taken, nothing moved."""
        t0 = time.perf_counter()
        self.stage.reset()
        self._state(p, planned_z_um)
        record = self._record(p, t, name, time_s, self._held(), reason, None, self._z_or_nan(),
                              t0, message=message)
        self.records.append(record)
        return record

    def _state(self, p: int | None, planned_z_um: float | None) -> PositionState:
        state = self.positions.get(p)
        if state is None:
            # scan / none: no model; the controller serves its limits and travel window
            model = self.predictor if self.predictor is not None else _NoModel()
            controller = FocusController(model, self.stage, self.settings.controller_settings())
            state = PositionState(controller, planned_z_um)
            self.positions[p] = state
        return state

    def _lock(self, state: PositionState) -> tuple[str, str, Decision | None]:
        try:
            decision = state.controller.lock()
        except ZFocusError as exc:
            return self._failed(str(exc))
        state.locked = True
        return LOCKED, "", decision

    def _correct(self, state: PositionState) -> tuple[str, str, Decision | None]:
        controller = state.controller
        controller.resume()  # failures are judged per refocus, by the policy
        acted: Decision | None = None
        last: Decision | None = None
        probed_from: float | None = None
        for _ in range(self.settings.max_focus_frames):
            last = controller.step()
            if last.reason in _MOVED:
                acted = last
                if not self._needs_confirmation(last):
                    break
            elif last.reason == IN_DEAD_BAND:
                acted = acted or last
                break
            elif acted is not None:
                break  # a confirmation frame failed: keep the move made on a good estimate
            elif probed_from is None and last.reason in _PROBE_AFTER:
                probed_from = self._probe(controller)
        if acted is None:
            assert last is not None  # max_focus_frames >= 1
            if probed_from is not None:
                self._walk_back(controller, probed_from)
            decision, reason, _ = self._failed(last.reason)
            return decision, reason, last
        moved = any(d.reason in _MOVED for d in (acted, last) if d is not None)
        return (CORRECTED if moved else IN_FOCUS), (last or acted).reason, last or acted

    def _probe(self, controller: FocusController) -> float | None:
        """Move ``probe_um`` away (up, or down when up is not allowed) for the next frame;
        the z it left, or None when no probe is made (0 um, no room, a stage failure)."""
        distance = min(self.settings.probe_um, self.settings.max_step_um)
        if distance <= 0:
            return None
        try:
            start = self.stage.get_z()
            limits = controller.z_limits_um
            for target in (start + distance, start - distance):
                if limits[0] <= target <= limits[1]:
                    walk_to(self.stage, target, limits, self.settings.max_step_um)
                    return start
        except Exception:  # noqa: BLE001 - no probe; the next frame is taken where it is
            return None
        return None

    def _walk_back(self, controller: FocusController, z_um: float) -> None:
        """Back to where the probe started (a refocus that finds nothing leaves the stage
        where it found it)."""
        try:
            walk_to(self.stage, z_um, controller.z_limits_um, self.settings.max_step_um)
        except Exception:  # noqa: BLE001 - the record says held; the next visit corrects
            return

    def _needs_confirmation(self, decision: Decision) -> bool:
        s = self.settings
        return (
            decision.reason == MOVED_CLAMPED
            or abs(decision.move_um) > s.confirm_above_um
            or decision.confidence < s.confirm_confidence
        )

    def _failed(self, reason: str) -> tuple[str, str, Decision | None]:
        """No usable estimate: the policy's decision (``scan`` is handled by the caller)."""
        return self._held(), reason, None

    def _held(self) -> str:
        """The decision when no usable estimate came: the policy's skip, else hold."""
        return SKIPPED if self.settings.policy == "skip" else HELD

    def _scan(self, state: PositionState, failed: str = "") -> tuple[str, str, Decision | None]:
        """A z-scan around the current z; the stage moves in safe steps only."""
        s = self.settings
        limits = state.controller.z_limits_um
        settings = s.scan_settings()

        def snap_at(z_um: float) -> np.ndarray:
            walk_to(self.stage, z_um, limits, s.max_step_um)
            return np.asarray(self.stage.snap().image)

        try:
            start = self.stage.get_z()
            result = scan_focus(snap_at, start, settings, limits_um=limits,
                                pixel_size_um=self.stage.pixel_size_um)
            if not result.ok:
                walk_to(self.stage, start, limits, s.max_step_um)
                return self._held(), f"scan failed: {result.message}", None
            walk_to(self.stage, result.best_z_um, limits, s.max_step_um)
        except Exception as exc:  # noqa: BLE001 - a failed scan falls back to holding
            return self._held(), f"scan failed: {exc}", None
        if s.method == "scan" and state.controller.locked_um is None:
            # Centres the travel window of later scans on this first focus (the scan
            # baseline reads no estimate, so the locked value itself is never used).
            state.controller.lock(target_z_um=0.0)
        return SCANNED, f"after {failed}" if failed else "", None

    # -- bookkeeping ---------------------------------------------------------------

    def _z_or_nan(self) -> float:
        try:
            return self.stage.get_z()
        except Exception:  # noqa: BLE001 - only for the record
            return math.nan

    def _record(
        self, p: int | None, t: int | None, name: str, time_s: float, decision: str,
        reason: str, last: Decision | None, start_z: float, t0: float, *,
        feed_forward_um: float = 0.0, message: str | None = None,
    ) -> FocusRecord:
        state = self.positions[p]
        focus_z = state.focus_z_um if state.focus_z_um is not None else math.nan
        true_error = math.nan
        if self.true_focus_um is not None and math.isfinite(focus_z):
            true_error = focus_z - float(self.true_focus_um(p))
        return FocusRecord(
            index=len(self.records), p=p, t=t, position=name or f"p{p}", time_s=time_s,
            decision=decision, reason=reason, stage_z_um=start_z,
            estimate_um=last.estimate_um if last is not None else math.nan,
            confidence=last.confidence if last is not None else math.nan,
            feed_forward_um=feed_forward_um, correction_um=self.stage.moved_um,
            focus_z_um=focus_z,
            offset_um=self.offset_um(p), focus_frames=self.stage.frames,
            max_move_um=self.stage.max_move_um,
            duration_ms=(time.perf_counter() - t0) * 1000,
            camera_ms=self.stage.camera_s * 1000, settle_ms=self.stage.settle_s * 1000,
            message=message if message is not None else (last.message if last else ""),
            true_error_um=true_error,
        )


class _NoModel:
    """The predictor of a controller that is only asked for its limits."""

    def predict(self, image: np.ndarray, pixel_size_um: float) -> Any:
        raise ZFocusError("no model: this autofocus does not read z from one frame")


__all__ = ["PositionState", "Refocuser"]
