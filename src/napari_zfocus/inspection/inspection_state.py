"""What the inspection dock knows, without Qt: model, layer choice, jobs and their results.

:class:`InspectionState` is the model behind the inspection dock (a view over it). It holds
the loaded model and its summary, the chosen image layer's name and pixel size, and the
five jobs (single prediction, focus map, evaluation, rescale, calibration) with their
rules:

* a model load in flight does not block the old model; only the newest load is kept;
* a prediction asked for while one runs is *coalesced*: one more run follows when it
  ends, however many were asked for (a z slider dragged over 50 slices gives 2 runs);
* a focus map, an evaluation, a rescale and a calibration run one at a time, each with a
  cancel event;
* a finished rescale's or calibration's model replaces the loaded one;
* :meth:`InspectionState.close` cancels them all (the dock is closing).

Every change is announced by a psygnal signal; the dock, a script or a test can drive it.
Worker jobs live in :mod:`napari_zfocus.inspection.jobs`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psygnal import Signal

from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.jobs import LoadedModel

__all__ = ["Controls", "InspectionState", "JobSlot", "MapGeometry"]


@dataclass(frozen=True)
class MapGeometry:
    """Where a focus map belongs: its image layer's name and (y, x) scale and translate."""

    layer_name: str
    scale_yx: tuple[float, float]
    translate_yx: tuple[float, float]


class JobSlot:
    """Room for one cancellable job: started, asked to stop, finished.

    Parameters
    ----------
    changed
        Called when a job starts or ends (the state's ``jobs_changed.emit``).
    """

    def __init__(self, changed: Callable[[], Any]) -> None:
        self.cancel_event: threading.Event | None = None
        self._changed = changed

    @property
    def running(self) -> bool:
        """Whether a job holds the slot."""
        return self.cancel_event is not None

    def start(self) -> threading.Event:
        """Take the slot (check :attr:`running` first); return the job's cancel event."""
        self.cancel_event = threading.Event()
        self._changed()
        return self.cancel_event

    def cancel(self) -> bool:
        """Ask the running job to stop; False if none runs."""
        if self.cancel_event is None:
            return False
        self.cancel_event.set()
        return True

    def finished(self) -> None:
        """The job ended (done, failed or cancelled): the slot is free."""
        self.cancel_event = None
        self._changed()


@dataclass(frozen=True)
class Controls:
    """Which of the dock's actions are available now."""

    predict: bool
    focus_map: bool
    cancel_focus_map: bool
    evaluate: bool
    cancel_evaluation: bool
    export: bool
    rescale: bool
    cancel_rescale: bool
    calibrate: bool
    cancel_calibration: bool


class InspectionState:
    """The inspection dock's model, layer choice, jobs and results.

    Signals
    -------
    model_changed(LoadedModel)
        A model was loaded (its predictor and summary).
    layer_changed(str, float)
        The chosen image layer and its pixel size (0: unknown).
    prediction_changed(object)
        A new single-slice prediction.
    focus_map_changed(object, MapGeometry)
        A new focus map, with the geometry of the image it was computed on.
    evaluation_changed(object)
        A new evaluation result.
    jobs_changed()
        A job started or ended (what is available, :meth:`controls`, may have changed).
    """

    model_changed = Signal(object)
    layer_changed = Signal(str, float)
    prediction_changed = Signal(object)
    focus_map_changed = Signal(object, object)
    evaluation_changed = Signal(object)
    jobs_changed = Signal()

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.loading: Path | None = None  # the newest model file being read
        self.layer_name = ""
        self.pixel_size_um = 0.0  # 0: unknown, the model's own is assumed
        self.last_prediction: Any = None
        self.predicting = False
        self._predict_again = False
        self.focus_map: Any = None
        self.map_geometry: MapGeometry | None = None
        self.result: Any = None  # the last EvaluationResult
        self.map_job = JobSlot(self.jobs_changed.emit)
        self.eval_job = JobSlot(self.jobs_changed.emit)
        self.rescale_job = JobSlot(self.jobs_changed.emit)
        self.calibrate_job = JobSlot(self.jobs_changed.emit)
        self._warned_pixel_size: set[str] = set()

    @property
    def predictor(self) -> Any:
        """The loaded model's predictor, or None."""
        return None if self.model is None else self.model.predictor

    def controls(self) -> Controls:
        """What may run now (a layer must be chosen for the image tools)."""
        image = self.model is not None and bool(self.layer_name)
        mapping = self.map_job.running
        evaluating = self.eval_job.running
        return Controls(
            predict=image and not self.predicting,
            focus_map=image and not mapping,
            cancel_focus_map=mapping,
            evaluate=self.model is not None and not evaluating,
            cancel_evaluation=evaluating,
            export=self.result is not None and not evaluating,
            rescale=self.model is not None and not self.rescale_job.running,
            cancel_rescale=self.rescale_job.running,
            calibrate=self.model is not None and not self.calibrate_job.running,
            cancel_calibration=self.calibrate_job.running,
        )

    # -- model ----------------------------------------------------------------------------

    def begin_loading(self, path: str | Path) -> Path:
        """A model file is about to be read in a worker; the newest load wins."""
        if not str(path).strip():
            raise ZFocusError("Enter a model file path first.")
        self.loading = Path(path)
        self.jobs_changed.emit()
        return self.loading

    def model_loaded(self, loaded: LoadedModel) -> bool:
        """Take a loaded model unless a newer load was started since; True if taken."""
        if loaded.path != self.loading:
            return False
        self.loading = None
        self.model = loaded
        self.model_changed.emit(loaded)
        self.jobs_changed.emit()
        return True

    def loading_failed(self, path: Path) -> None:
        """Reading ``path`` failed: the old model (if any) stays."""
        if path == self.loading:
            self.loading = None
            self.jobs_changed.emit()

    # -- image layer ----------------------------------------------------------------------

    def set_layer(self, name: str, pixel_size_um: float | None = None) -> None:
        """Choose the image layer (``""``: none) and its pixel size (None: unknown)."""
        self.layer_name = name
        self.pixel_size_um = float(pixel_size_um or 0.0)
        self.layer_changed.emit(name, self.pixel_size_um)
        self.jobs_changed.emit()

    def set_pixel_size(self, pixel_size_um: float) -> None:
        """The user's pixel size for the chosen layer (0: unknown)."""
        self.pixel_size_um = max(0.0, float(pixel_size_um))

    def check_image_tools(self) -> None:
        """Raise ``ZFocusError`` saying what is missing before a prediction or focus map."""
        if self.model is None:
            raise ZFocusError("Load a model first.")
        if not self.layer_name:
            raise ZFocusError("Add or choose an Image layer to inspect.")

    def pixel_size_for_prediction(self) -> tuple[float, str | None]:
        """``(pixel size, warning)``: the user's, else the model's with a warning once per layer."""
        if self.pixel_size_um > 0:
            return self.pixel_size_um, None
        px = float(self.predictor.config.pixel_size_um)
        if self.layer_name in self._warned_pixel_size:
            return px, None
        self._warned_pixel_size.add(self.layer_name)  # once per layer, not per slider step
        return px, (
            f"{self.layer_name}: pixel size unknown; assuming the model's {px:g} um/px. "
            "Set it in 'pixel size' if the image was taken at another magnification."
        )

    # -- single prediction ----------------------------------------------------------------

    def request_prediction(self) -> bool:
        """True if a prediction may start now; while one runs, one more run is remembered."""
        if self.predicting:
            self._predict_again = True
            return False
        return True

    def prediction_started(self) -> None:
        self.predicting = True
        self.jobs_changed.emit()

    def prediction_finished(self) -> bool:
        """The running prediction ended; True if another was asked for meanwhile."""
        self.predicting = False
        again, self._predict_again = self._predict_again, False
        self.jobs_changed.emit()
        return again

    def set_prediction(self, prediction: Any) -> None:
        self.last_prediction = prediction
        self.prediction_changed.emit(prediction)

    # -- focus map ------------------------------------------------------------------------

    def start_focus_map(self) -> threading.Event | None:
        """The cancel event of a new focus-map job, or None while one runs."""
        return None if self.map_job.running else self.map_job.start()

    def cancel_focus_map(self) -> bool:
        """Ask the running focus map to stop; False if none runs."""
        return self.map_job.cancel()

    def focus_map_finished(self) -> None:
        self.map_job.finished()

    def set_focus_map(self, focus_map: Any, geometry: MapGeometry) -> None:
        self.focus_map = focus_map
        self.map_geometry = geometry
        self.focus_map_changed.emit(focus_map, geometry)

    # -- evaluation -----------------------------------------------------------------------

    def start_evaluation(self, folder: str) -> tuple[str, threading.Event] | None:
        """``(folder, cancel event)`` of a new evaluation, or None while one runs.

        Raises
        ------
        ZFocusError
            No model, no folder given, or no such folder.
        """
        if self.eval_job.running:
            return None
        if self.model is None:
            raise ZFocusError("Load a model first.")
        path = _existing_folder(folder, "Choose a dataset folder (with annotations.csv) first.")
        return str(path), self.eval_job.start()

    def cancel_evaluation(self) -> bool:
        """Ask the running evaluation to stop; False if none runs."""
        return self.eval_job.cancel()

    def evaluation_finished(self) -> None:
        self.eval_job.finished()

    def set_evaluation(self, result: Any) -> None:
        self.result = result
        self.evaluation_changed.emit(result)

    def check_export(self) -> None:
        if self.result is None:
            raise ZFocusError("Nothing to export: run an evaluation first.")

    # -- rescale --------------------------------------------------------------------------

    def start_rescale(self, stacks: Sequence[str | Path], out: Path,
                      condenser_na: float | None = None,
                      ) -> tuple[Path, list[Path], Path, threading.Event] | None:
        """``(model file, stacks, output file, cancel event)`` of a new rescale, or None
        while one runs. ``out`` must have been checked already
        (:func:`napari_zfocus.outputs.check_model_copy`, a layer above this one). With
        ``condenser_na`` (a model trained with a reference aperture) no stack is needed.

        Raises
        ------
        ZFocusError
            No model, no stack, or a stack that does not exist; both stacks and an
            aperture, or an aperture for a model without a reference one.
        """
        if self.rescale_job.running:
            return None
        if self.model is None:
            raise ZFocusError("Load a model first.")
        if condenser_na is not None:
            if stacks:
                raise ZFocusError("Give z-stacks or a condenser aperture, not both (clear "
                                  "the stacks, or set the aperture to 'from stacks').")
            from napari_zfocus.model.aperture import aperture_distance_scale

            aperture_distance_scale(self.model.predictor.config, condenser_na,
                                    self.model.path.name)
            return self.model.path, [], Path(out), self.rescale_job.start()
        if not stacks:
            raise ZFocusError("Add z-stacks taken at the new setting first (no annotation "
                              "needed).")
        paths = [Path(s) for s in stacks]
        for path in paths:
            if not path.exists():
                raise ZFocusError(f"{path}: no such stack file or folder")
        return self.model.path, paths, Path(out), self.rescale_job.start()

    def cancel_rescale(self) -> bool:
        """Ask the running rescale to stop; False if none runs."""
        return self.rescale_job.cancel()

    def rescale_finished(self) -> None:
        self.rescale_job.finished()

    def set_rescaled(self, rescaled: Any) -> None:
        """Use the rescaled model (``jobs.Rescaled``; None: cancelled, nothing changes)."""
        self._use_copy(rescaled)

    # -- calibration ----------------------------------------------------------------------

    def start_calibration(self, folder: str, out: Path,
                          ) -> tuple[Path, Path, Path, threading.Event] | None:
        """``(model file, dataset folder, output file, cancel event)`` of a new calibration,
        or None while one runs. ``out`` must have been checked already
        (:func:`napari_zfocus.outputs.check_model_copy`).

        Raises
        ------
        ZFocusError
            No model, no folder given, or no such folder.
        """
        if self.calibrate_job.running:
            return None
        if self.model is None:
            raise ZFocusError("Load a model first.")
        path = _existing_folder(folder, "Choose a folder of annotated held-out stacks (with "
                                        "annotations.csv) first.")
        return self.model.path, path, Path(out), self.calibrate_job.start()

    def cancel_calibration(self) -> bool:
        """Ask the running calibration to stop; False if none runs."""
        return self.calibrate_job.cancel()

    def calibration_finished(self) -> None:
        self.calibrate_job.finished()

    def set_calibrated(self, calibrated: Any) -> None:
        """Use the calibrated model (``jobs.Calibrated``; None: cancelled, nothing changes)."""
        self._use_copy(calibrated)

    def _use_copy(self, made: Any) -> None:
        """Use the model copy a job wrote (its ``loaded``); None: nothing was written."""
        if made is None:
            return
        self.loading = made.loaded.path
        self.model_loaded(made.loaded)

    def close(self) -> None:
        """Cancel the running jobs (the dock is closing); they stop at their next step."""
        for job in (self.map_job, self.eval_job, self.rescale_job, self.calibrate_job):
            job.cancel()


def _existing_folder(folder: str, missing: str) -> Path:
    """The folder the user typed (spaces around it dropped); ``ZFocusError`` with
    ``missing`` when none was given, naming it when it does not exist."""
    folder = folder.strip()
    if not folder:
        raise ZFocusError(missing)
    if not Path(folder).is_dir():
        raise ZFocusError(f"{folder}: no such folder")
    return Path(folder)
