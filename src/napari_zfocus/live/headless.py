"""A headless live-autofocus experiment on the simulated microscope.

:func:`run_simulated_session` reproduces the paper's long time-lapse in simulation: the
sample starts in focus, the focus is locked on the model's estimate, then the sample drifts
(thermal drift, wander, jumps) and grows while the controller keeps it in focus. Time is
simulated, so 24 h run as fast as the CPU allows. The score is the TRUE focus error of each
frame (known to the simulator), not the model's opinion of it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_zfocus.errors import ModelFileError, ZFocusError
from napari_zfocus.live.controller import (
    ControllerSettings,
    Decision,
    FocusController,
    PredictorLike,
)
from napari_zfocus.live.drift import DriftSettings, ThermalDrift
from napari_zfocus.live.frame_loop import drive_frames
from napari_zfocus.live.microscope import Frame
from napari_zfocus.live.scenes import SceneRenderer
from napari_zfocus.live.simulated_microscope import (
    OraclePredictor,
    SimClock,
    SimulatedMicroscope,
    SimulatedMicroscopeSettings,
)

#: Where the packaged demo model lives (provided by the release, not by training here).
DEMO_MODEL = Path(__file__).resolve().parent.parent / "resources" / "demo_model.zfm"

ProgressCallback = Callable[[int, int, Decision], None]


def demo_model_path() -> Path:
    """Path of the packaged demo model; :class:`ModelFileError` if it is not installed."""
    if not DEMO_MODEL.is_file():
        raise ModelFileError(
            f"{DEMO_MODEL}: demo model not found; pass --model PATH (train one with `zfocus train`)"
        )
    return DEMO_MODEL


def load_predictor(model_path: str | Path | None) -> PredictorLike:
    """Load a :class:`~napari_zfocus.model.inference.Predictor` (the demo model if None)."""
    path = Path(model_path) if model_path is not None else demo_model_path()
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    from napari_zfocus.model.inference import Predictor  # torch: import only when needed

    return Predictor.from_file(path)


def check_pixel_size_fits(predictor: PredictorLike, pixel_size_um: float) -> None:
    """Refuse, before the first frame, a microscope whose pixels the model cannot use.

    Otherwise every frame fails the same way inside the loop and the user only sees
    "cannot lock focus: no usable estimate". Predictors without a ``config`` (oracles,
    fakes) are not checked.
    """
    model_px = getattr(getattr(predictor, "config", None), "pixel_size_um", None)
    if model_px is None:
        return
    from napari_zfocus.model.preprocess import check_resampling

    try:
        check_resampling(pixel_size_um, float(model_px))
    except ZFocusError as exc:
        raise ZFocusError(f"microscope {exc}") from None


@dataclass
class SessionResult:
    """Outcome of :func:`run_simulated_session`.

    ``errors_um`` holds the true focus error (sample z minus focal plane, um) of every
    frame after the lock, measured when the frame was taken (before its correction).
    """

    frames: int
    hours: float
    within_1um: float
    max_abs_error_um: float
    mean_abs_error_um: float
    max_step_um: float
    moves: int
    holds: dict[str, int]
    stage_range_um: tuple[float, float]
    z_limits_um: tuple[float, float]
    sample_range_um: tuple[float, float]
    wall_s: float
    fps: float
    stopped: bool
    stop_reason: str
    cancelled: bool
    renders: int
    errors_um: np.ndarray = field(repr=False)
    controller: FocusController = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (the keys of ``zfocus live --json``)."""
        return {
            "frames": self.frames,
            "hours": self.hours,
            "within_1um": self.within_1um,
            "max_abs_error_um": self.max_abs_error_um,
            "mean_abs_error_um": self.mean_abs_error_um,
            "max_step_um": self.max_step_um,
            "max_step_limit_um": self.controller.settings.max_step_um,
            "moves": self.moves,
            "holds": dict(self.holds),
            "stage_range_um": list(self.stage_range_um),
            "z_limits_um": list(self.z_limits_um),
            "sample_range_um": list(self.sample_range_um),
            "wall_s": self.wall_s,
            "fps": self.fps,
            "stopped": self.stopped,
            "stop_reason": self.stop_reason,
            "cancelled": self.cancelled,
            "renders": self.renders,
        }


def run_simulated_session(
    model_path: str | Path | None = None,
    hours: float = 1.0,
    drift_um: float = 40.0,
    frame_interval_s: float = 5.0,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    *,
    predictor: PredictorLike | None = None,
    oracle_noise_um: float | None = None,
    oracle_gain: float = 1.0,
    renderer: SceneRenderer | None = None,
    controller_settings: ControllerSettings | None = None,
    microscope_settings: SimulatedMicroscopeSettings | None = None,
    drift_settings: DriftSettings | None = None,
    cancel: Callable[[], bool] | None = None,
) -> SessionResult:
    """Run a simulated live-autofocus experiment without a GUI.

    Parameters
    ----------
    model_path
        Model file; None uses ``predictor`` if given, else the packaged demo model.
    hours
        Simulated duration.
    drift_um
        Net thermal drift of the sample over the whole session (the paper: 40 um in 24 h).
    frame_interval_s
        Simulated time between frames.
    seed
        Seed of drift, scene and camera noise.
    progress
        Called as ``progress(done, total, decision)`` about 200 times per session.
    predictor
        Injected predictor; overrides ``model_path``.
    oracle_noise_um
        Use an :class:`~napari_zfocus.live.simulated_microscope.OraclePredictor` (true defocus +
        this much noise) instead of a model: validates the loop without a network.
    oracle_gain
        The oracle reads ``oracle_gain`` times the true defocus: how the loop copes with a
        model whose distances are off by a factor (another condenser aperture).
    renderer
        Injected scene renderer; default the project's bright-field simulator.
    controller_settings, microscope_settings, drift_settings
        Overrides; ``drift_settings`` replaces ``hours``/``drift_um`` for the drift.
    cancel
        Polled every frame; returning True ends the session early (``cancelled``).
    """
    _check_session(hours, frame_interval_s, drift_um)
    if predictor is None and oracle_noise_um is None:
        predictor = load_predictor(model_path)
    duration_s = hours * 3600.0
    drift = drift_settings or DriftSettings(total_drift_um=drift_um, duration_s=duration_s)
    clock = SimClock()
    microscope = SimulatedMicroscope(microscope_settings, drift=ThermalDrift(drift, seed=seed),
                                     renderer=renderer, clock=clock, seed=seed)
    if predictor is None:  # then oracle_noise_um is a number (else a model was loaded)
        predictor = OraclePredictor(microscope, float(oracle_noise_um or 0.0),
                                    gain=oracle_gain, seed=seed)
    check_pixel_size_fits(predictor, microscope.pixel_size_um)
    controller = FocusController(predictor, microscope, controller_settings)
    n_frames = max(1, int(duration_s // frame_interval_s))
    frames = _frames_on_schedule(microscope, clock, n_frames, frame_interval_s)
    record = _Recorder(n_frames, progress)
    return _lock_and_drive(controller, microscope, frames, record, hours, cancel)


def _check_session(hours: float, frame_interval_s: float, drift_um: float) -> None:
    if not (hours > 0 and math.isfinite(hours)):
        raise ZFocusError(f"session length must be a positive number of hours, got {hours}")
    if not (frame_interval_s > 0 and math.isfinite(frame_interval_s)):
        raise ZFocusError(f"frame interval must be positive, got {frame_interval_s} s")
    if not math.isfinite(drift_um):
        raise ZFocusError(f"drift must be a finite number of um, got {drift_um}")


def _lock_and_drive(
    controller: FocusController,
    microscope: SimulatedMicroscope,
    frames: Iterator[Frame],
    record: _Recorder,
    hours: float,
    cancel: Callable[[], bool] | None,
) -> SessionResult:
    """Lock the focus, drive every frame through the controller (the one frame loop),
    record it, and score the session; the microscope is closed whatever happens."""
    cancelled = False

    def should_stop() -> bool:
        nonlocal cancelled
        cancelled = cancel is not None and bool(cancel())
        return cancelled

    t_wall = time.perf_counter()
    try:
        controller.lock()
        for result in drive_frames(frames, controller.step, should_stop=should_stop):
            record(result.frame, result.output)
    finally:
        microscope.close()
    cancelled = cancelled and record.done < record.n_frames  # a late cancel stops nothing
    return _result(record, hours, time.perf_counter() - t_wall, cancelled, controller, microscope)


def _frames_on_schedule(
    microscope: SimulatedMicroscope, clock: SimClock, n_frames: int, interval_s: float
) -> Iterator[Frame]:
    """Frame ``i`` at simulated time ``(i + 1) * interval_s``: the simulated clock paces."""
    for i in range(n_frames):
        t_frame = (i + 1) * interval_s
        if t_frame > clock.now():
            clock.advance(t_frame - clock.now())
        yield microscope.snap()


class _Recorder:
    """The true focus error, stage and sample z of every frame, and the progress reports."""

    def __init__(self, n_frames: int, progress: ProgressCallback | None) -> None:
        self.n_frames = n_frames
        self.progress = progress
        self.report_every = max(1, n_frames // 200)
        self.errors = np.full(n_frames, np.nan)
        self.stage = np.full(n_frames, np.nan)
        self.sample = np.full(n_frames, np.nan)
        self.done = 0

    def __call__(self, frame: Frame, decision: Decision) -> None:
        i = self.done
        self.errors[i] = frame.metadata["true_defocus_um"]
        self.stage[i] = frame.stage_z_um
        self.sample[i] = frame.metadata["sample_z_um"]
        self.done = i + 1
        if self.progress is not None and (
            self.done % self.report_every == 0 or self.done == self.n_frames
        ):
            self.progress(self.done, self.n_frames, decision)


def _span(values: np.ndarray) -> tuple[float, float]:
    return (float(values.min()), float(values.max())) if len(values) else (math.nan, math.nan)


def _result(
    record: _Recorder,
    hours: float,
    wall_s: float,
    cancelled: bool,
    controller: FocusController,
    microscope: SimulatedMicroscope,
) -> SessionResult:
    """Score the recorded frames."""
    done = record.done
    errors = record.errors[:done]
    summary = controller.summary()
    abs_err = np.abs(errors)
    return SessionResult(
        frames=done,
        hours=hours,
        within_1um=float(np.mean(abs_err <= 1.0)) if done else math.nan,
        max_abs_error_um=float(abs_err.max()) if done else math.nan,
        mean_abs_error_um=float(abs_err.mean()) if done else math.nan,
        max_step_um=float(summary["max_step_um"]),
        moves=int(summary["moves"]),
        holds=summary["holds"],
        stage_range_um=_span(record.stage[:done]),
        z_limits_um=controller.z_limits_um,
        sample_range_um=_span(record.sample[:done]),
        wall_s=wall_s,
        fps=done / wall_s if wall_s > 0 else math.nan,
        stopped=controller.stopped,
        stop_reason=controller.stop_reason,
        cancelled=cancelled,
        renders=microscope.n_renders,
        errors_um=errors,
        controller=controller,
    )
