"""A multi-position time-lapse on the simulated microscope, scored against the truth.

:func:`run_simulated_acquisition` is what ``zfocus acquire --simulate`` and the benchmarks
run: a real pymmcore-plus MDA (``core.mda.run``) of a
:class:`~napari_zfocus.acquisition.simulated_scope.SimulatedScope` plate on a simulated clock,
with the one-frame autofocus, the scan baseline, or no autofocus. Every acquired image
frame is scored by its TRUE focus error (the camera knows where the sample is), so the
result says how well each autofocus kept the plate in focus and what it cost in frames.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import numpy as np

from napari_zfocus.acquisition.focus_log import refocus_counts
from napari_zfocus.acquisition.settings import AutofocusSettings, FocusRecord
from napari_zfocus.acquisition.simulated_scope import (
    SimulatedScope,
    SimulatedScopeSettings,
    simulated_waits,
)
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller_settings import PredictorLike
from napari_zfocus.validation import check_number

#: The acquisition's imaging channels: bright field, then a fluorescence-like channel.
CHANNELS = ("BF", "FL")
FOCUS_GROUP, FOCUS_PRESET = "Channel", "BF"


@dataclass
class SimulatedAcquisition:
    """What to acquire on the simulated plate (times in hours / minutes, distances in um)."""

    positions: int = 4
    hours: float = 24.0
    interval_min: float = 10.0
    drift_um: float = 40.0
    seed: int = 0
    channels: tuple[str, ...] = CHANNELS
    scope: SimulatedScopeSettings = field(default_factory=SimulatedScopeSettings)

    def validate(self) -> None:
        """Raise :class:`ZFocusError` naming an impossible request."""
        check_number(self.positions, "positions", lo=1, hi=96, integer=True)
        check_number(self.hours, "hours", lo=0, hi=24 * 14)
        check_number(self.interval_min, "interval (min)", lo=0, lo_open=True, hi=24 * 60)
        check_number(self.drift_um, "drift (um)", lo=-500, hi=500)

    @property
    def timepoints(self) -> int:
        """Time points: one at 0 and one every interval up to ``hours``."""
        return int(math.floor(self.hours * 60.0 / self.interval_min + 1e-9)) + 1

    def sequence(self, positions: list[Any]) -> Any:
        """The ``useq.MDASequence``: positions, channels, a time plan; no z-stack."""
        import useq

        return useq.MDASequence(
            stage_positions=tuple(positions),
            channels=tuple(useq.Channel(config=c, group=FOCUS_GROUP, exposure=None)
                           for c in self.channels),
            time_plan=useq.TIntervalLoops(interval=timedelta(minutes=self.interval_min),
                                          loops=self.timepoints),
            axis_order=tuple("tpcz"),
        )


@dataclass
class SimulatedRunResult:
    """The summary of a simulated acquisition (see :func:`summarize`) and its refocuses."""

    summary: dict[str, Any]
    records: list[FocusRecord]


@dataclass
class FrameScore:
    """The true focus error of one acquired image frame."""

    p: int
    t: int
    channel: str
    error_um: float  # stage z - true focus z (nan off every position)


def run_simulated_acquisition(
    predictor: PredictorLike | None,
    request: SimulatedAcquisition,
    settings: AutofocusSettings,
    *,
    progress: Callable[[int, int, FocusRecord | None], None] | None = None,
) -> SimulatedRunResult:
    """Run the acquisition; return its summary (see :func:`summarize`) and refocuses.

    ``settings.method == "none"`` runs pymmcore-plus's own engine with no autofocus.
    """
    from napari_zfocus.acquisition.autofocus import AcquisitionAutofocus

    request.validate()
    scope = SimulatedScope(replace(
        request.scope, positions=request.positions, drift_um=request.drift_um,
        duration_h=max(request.hours, 1e-3), seed=request.seed,
    ))
    try:
        core = scope.core
        sequence = request.sequence(scope.position_list())
        total = request.timepoints * request.positions * len(request.channels)
        scores: list[FrameScore] = []
        records: list[FocusRecord] = []

        def on_frame(image: Any, event: Any, meta: Any) -> None:
            snap = scope.last_snap
            error = math.nan
            if snap is not None and snap.true_defocus_um is not None:
                error = -float(snap.true_defocus_um)  # stage - focus = -(focus - stage)
            scores.append(FrameScore(int(event.index.get("p", 0)), int(event.index.get("t", 0)),
                                     str(event.channel.config if event.channel else ""), error))
            if progress is not None:
                progress(len(scores), total, records[-1] if records else None)

        af = AcquisitionAutofocus(
            core, predictor, settings,
            true_focus_um=lambda p: scope.focus_z_um(int(p or 0)), clock=scope.clock.now,
        )
        af.refocused.connect(records.append)
        core.mda.events.frameReady.connect(on_frame)
        t0 = time.perf_counter()
        try:
            if settings.method == "none":
                with simulated_waits(scope):
                    core.mda.run(sequence)
                skipped = 0
            else:
                with af, simulated_waits(scope) as engine:
                    core.mda.run(sequence)
                skipped = engine.skipped_frames
        finally:
            core.mda.events.frameReady.disconnect(on_frame)
        wall = time.perf_counter() - t0
        summary = summarize(request, settings, scores, records, skipped=skipped, wall_s=wall)
        return SimulatedRunResult(summary, records)
    finally:
        scope.close()


def summarize(
    request: SimulatedAcquisition, settings: AutofocusSettings, scores: list[FrameScore],
    records: list[FocusRecord], *, skipped: int, wall_s: float,
) -> dict[str, Any]:
    """The acquisition's summary: the issue's JSON keys plus details.

    ``within_1um`` is the share of acquired image frames whose TRUE focus error is within
    +/-1 um; ``focus_frames`` counts frames taken only to focus; the ``refocus_added_ms_*``
    figures are each refocus's wall time minus its camera time (exposure, readout and the
    simulator's rendering) and stage settling.
    """
    errors = np.array([s.error_um for s in scores], dtype=float)
    finite = errors[np.isfinite(errors)]
    counts = refocus_counts(records)
    added = np.array([r.duration_ms - r.camera_ms - r.settle_ms for r in records], dtype=float)
    if scores and finite.size != errors.size:
        raise ZFocusError("simulated acquisition: a frame was acquired off every position")
    return {
        "autofocus": settings.method,
        "policy": settings.policy,
        "positions": request.positions,
        "timepoints": request.timepoints,
        "hours": request.hours,
        "interval_min": request.interval_min,
        "drift_um": request.drift_um,
        "seed": request.seed,
        "frames": len(scores),
        "within_1um": float(np.mean(np.abs(finite) <= 1.0)) if finite.size else None,
        "mean_abs_error_um": float(np.mean(np.abs(finite))) if finite.size else None,
        "median_abs_error_um": float(np.median(np.abs(finite))) if finite.size else None,
        "max_abs_error_um": float(np.max(np.abs(finite))) if finite.size else None,
        **counts,
        "max_step_limit_um": settings.max_step_um,
        "skipped": skipped,
        "refocus_added_ms_median": float(np.median(added)) if added.size else None,
        "refocus_added_ms_p95": float(np.percentile(added, 95)) if added.size else None,
        "refocus_camera_ms_median": (
            float(np.median([r.camera_ms for r in records])) if records else None),
        "wall_s": wall_s,
    }


__all__ = ["CHANNELS", "FrameScore", "SimulatedAcquisition", "SimulatedRunResult",
           "run_simulated_acquisition", "summarize"]
