"""The per-frame work of the live autofocus dock, without Qt.

:class:`LiveAutofocus` is the step that :class:`~napari_zfocus.live.frame_loop.LiveLoop`
runs on every frame in its worker thread. It owns one
:class:`~napari_zfocus.live.controller.FocusController` and adds what a live view needs
on top of the decision log:

* the full :class:`~napari_zfocus.model.inference.Prediction` of the frame (softmax for the
  bar chart), captured by wrapping the predictor, since a controller decision only keeps
  the estimate;
* an *autofocus* switch: off, frames are only read (estimate, confidence, softmax) and the
  focus drive is never moved, even while locked; on, the controller decides and moves.

Everything here must be called from ONE thread (the loop thread); the dock sends lock,
unlock, settings and autofocus changes through :meth:`LiveLoop.submit`.

It is *evented*: psygnal signals announce what changed (lock, autofocus, settings) and
what to tell the user (messages), so a dock, the CLI or a test only listens. They are
emitted in the calling thread, the loop thread while live: a Qt view must hand them over
to its GUI thread (the dock queues them for its display timer). Per-frame data is NOT
signalled: it goes through the loop's latest-only slot (:class:`LiveOutput`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller import (
    ControllerSettings,
    Decision,
    FocusController,
    metadata_float,
)
from napari_zfocus.live.microscope import Frame, Microscope

__all__ = ["LiveAutofocus", "LiveOutput", "RecordingPredictor", "load_predictor"]


def load_predictor(path: str | Path) -> tuple[Any, str]:
    """The model file ``path`` as a live predictor, and a line describing it (slow: worker).

    Raises
    ------
    ZFocusError
        The file is not a usable model (named).
    """
    from napari_zfocus.model.inference import Predictor, available_cores

    path = Path(path)
    # One core fewer than available for torch: the GUI thread needs one to stay
    # responsive, and OpenMP threads spinning on a busy core slow inference down.
    predictor = Predictor.from_file(path, num_threads=max(1, available_cores() - 1))
    c = predictor.config
    calibration = predictor.calibration
    # Says whether frames unlike the model's world are held: with an uncalibrated model
    # the live loop has no out-of-distribution check (README, "Calibrated confidence").
    if calibration is None:
        checks = "confidence not calibrated, no out-of-distribution check"
    elif calibration.ood is None:
        checks = "calibrated confidence, no out-of-distribution check"
    else:
        checks = "calibrated confidence and out-of-distribution check"
    return predictor, (
        f"{path.name}: {c.field_um:g} um field at {c.pixel_size_um:g} um/px, "
        f"{c.n_bins} bins of {c.bin_um:g} um; {checks}"
    )


class RecordingPredictor:
    """Predictor proxy that remembers the last prediction it returned."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.last: Any = None

    def predict(self, image: np.ndarray, pixel_size_um: float) -> Any:
        """Predict with the wrapped predictor and remember the result."""
        self.last = None  # a failing predict must not leave the previous frame's result
        self.last = self.predictor.predict(image, pixel_size_um)
        return self.last


@dataclass
class LiveOutput:
    """What the display needs about one frame.

    Attributes
    ----------
    stage_z_um
        Focus drive position during the exposure.
    time_s
        Frame time on the microscope's clock.
    prediction
        The model's reading (None when it could not run: blank frame, model error).
    decision
        The controller's decision (None when autofocus is off).
    locked_um
        The locked estimate, or NaN when not locked.
    autofocus
        Whether autofocus was on for this frame.
    sample_z_um
        True in-focus stage position, when the microscope knows it (simulation), else NaN.
    message
        Problem worth showing (model error text), else "".
    """

    stage_z_um: float
    time_s: float
    prediction: Any
    decision: Decision | None
    locked_um: float
    autofocus: bool
    sample_z_um: float = math.nan
    message: str = ""

    @property
    def estimate_um(self) -> float:
        """Model estimate of the sample z relative to the focal plane (NaN if none)."""
        return math.nan if self.prediction is None else float(self.prediction.z_um)

    @property
    def focus_z_um(self) -> float:
        """Estimated sample position in stage coordinates: where the stage would have to be
        for the sample to sit in the focal plane (``stage z + estimate``).

        The "estimated sample focus" of the paper's Fig. 6: comparable on one plot with
        :attr:`stage_z_um` and, in simulation, with :attr:`sample_z_um`.
        """
        return self.stage_z_um + self.estimate_um


class LiveAutofocus:
    """Estimate on every frame; with autofocus on, let the controller move the drive.

    Parameters
    ----------
    predictor
        A :class:`~napari_zfocus.model.inference.Predictor` (or anything with ``predict``).
    microscope
        The microscope the frames come from and the moves go to.
    settings
        Controller settings.
    autofocus
        Start with autofocus on.

    Signals
    -------
    locked(float)
        Focus locked; the locked estimate, um.
    unlocked()
        The lock is gone (released, or a lock attempt failed).
    autofocus_changed(bool)
        Autofocus switched on or off.
    settings_changed(ControllerSettings)
        New controller settings in use.
    message(str, str)
        ``(kind, text)`` for the user: kind ``"info"`` or ``"error"``.
    """

    locked = Signal(float)
    unlocked = Signal()
    autofocus_changed = Signal(bool)
    settings_changed = Signal(object)
    message = Signal(str, str)

    def __init__(
        self,
        predictor: Any,
        microscope: Microscope,
        settings: ControllerSettings | None = None,
        *,
        autofocus: bool = False,
    ) -> None:
        self.microscope = microscope
        self._recorder = RecordingPredictor(predictor)
        self.controller = FocusController(self._recorder, microscope, settings)
        self.autofocus = bool(autofocus)

    @property
    def locked_um(self) -> float:
        """Locked estimate, NaN when not locked."""
        locked = self.controller.locked_um
        return math.nan if locked is None else float(locked)

    def lock(self, target_z_um: float | None = None) -> Decision:
        """Lock on ``target_z_um`` or on the median estimate of a few fresh frames.

        A failed lock (no usable estimate) emits ``unlocked`` and raises ZFocusError.
        """
        try:
            decision = self.controller.lock(target_z_um)
        except ZFocusError:
            self.unlocked.emit()
            raise
        self.locked.emit(float(decision.estimate_um))
        return decision

    def unlock(self) -> None:
        """Forget the lock (autofocus then has nothing to hold)."""
        self.controller.unlock()
        self.unlocked.emit()

    def set_autofocus(self, on: bool) -> None:
        """Turn moving the focus drive on or off; turning it on clears a safe stop."""
        if on and self.controller.stopped:
            self.controller.resume()
        self.autofocus = bool(on)
        self.autofocus_changed.emit(self.autofocus)

    def set_settings(self, settings: ControllerSettings) -> None:
        """Replace the controller settings (validated first; the lock is kept)."""
        settings.validate()
        self.controller.settings = settings
        self.settings_changed.emit(settings)

    def export_log(self, path: str | Path) -> None:
        """Write the controller's decision log as CSV; says so with a ``message``.

        Raises
        ------
        ZFocusError
            The file cannot be written (named, with the reason).
        """
        try:
            self.controller.export_csv(path)
        except OSError as exc:
            raise ZFocusError(f"{path}: cannot write decision log ({exc.strerror})") from None
        self.message.emit("info", f"Decision log saved to {path}")

    def run_command(self, command: Callable[[LiveAutofocus], Any]) -> None:
        """Run ``command(self)``; a user error becomes a ``message("error", ...)``.

        The dock's commands (lock, settings, export) run in the loop thread through this,
        so a refused command is reported to the user instead of ending the live view.
        """
        try:
            command(self)
        except ZFocusError as exc:
            self.message.emit("error", str(exc))

    def __call__(self, frame: Frame) -> LiveOutput:
        """Process one frame (called by the live loop in its thread)."""
        self._recorder.last = None
        decision: Decision | None = None
        message = ""
        if self.autofocus:
            decision = self.controller.step(frame)
            if decision.reason in ("model_error", "camera_error", "stopped"):
                message = decision.message
        else:
            try:
                self._recorder.predict(frame.image, self.microscope.pixel_size_um)
            except Exception as exc:  # noqa: BLE001 - shown to the user, live view goes on
                message = f"{type(exc).__name__}: {exc}"
        return LiveOutput(
            stage_z_um=float(frame.stage_z_um),
            time_s=float(frame.timestamp_s),
            prediction=self._recorder.last,
            decision=decision,
            locked_um=self.locked_um,
            autofocus=self.autofocus,
            sample_z_um=metadata_float(frame, "sample_z_um"),
            message=message,
        )
