"""The inspection dock's background jobs: plain data in, plain data out, no Qt, no layers.

Each function runs in a worker thread. Generators yield progress and return their result;
the long ones take a :class:`threading.Event` that cancels them between tiles or images.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_zfocus.errors import DatasetError
from napari_zfocus.inspection.display import describe_model, describe_model_text


@dataclass(frozen=True)
class LoadedModel:
    """A model file read in a worker: the predictor and the summary the dock shows."""

    path: Path
    predictor: Any
    description: str


def load_model_job(path: Path) -> LoadedModel:
    """Read a model file (weights and metadata); ``ModelFileError`` names the file."""
    from napari_zfocus.model.inference import Predictor
    from napari_zfocus.model.io import load_model

    loaded = load_model(path)  # read once: the predictor and the summary share it
    rows = describe_model(loaded.config, loaded.metadata, loaded.info)
    return LoadedModel(Path(path), Predictor.from_loaded(loaded), describe_model_text(rows))


@dataclass(frozen=True)
class Rescaled:
    """A model rescaled in a worker: the new file, loaded, and its distance scale."""

    loaded: LoadedModel
    scale: Any


def rescale_job(
    predictor: Any, model_path: Path, stacks: list[Path], z_step_um: float | None,
    pixel_size_um: float | None, out: Path, cancel: threading.Event,
) -> Generator[tuple[int, int], None, Rescaled | None]:
    """Measure the model's distance scale on unannotated ``stacks`` and write it to a copy.

    Yields ``(stacks done, stacks)``; returns the rescaled model, or None when cancelled
    (nothing is written then). ``z_step_um`` and ``pixel_size_um`` override the stacks'
    own (None: theirs).
    """
    from napari_zfocus.data import read_stack
    from napari_zfocus.model.distance_scale import iter_measure_distance_scale
    from napari_zfocus.model.io import save_rescaled_copy

    # Every stack is opened (its metadata checked) before any is read.
    opened = [read_stack(p, z_step_um=z_step_um, pixel_size_um=pixel_size_um) for p in stacks]
    scale = yield from iter_measure_distance_scale(predictor, opened, cancel=cancel.is_set)
    if scale is None:
        return None
    save_rescaled_copy(model_path, scale, out)
    return Rescaled(load_model_job(out), scale)


def aperture_rescale_job(
    predictor: Any, model_path: Path, condenser_na: float, out: Path,
    cancel: threading.Event,
) -> Generator[tuple[int, int], None, Rescaled | None]:
    """Set a model trained with a reference condenser aperture to ``condenser_na`` (no
    stack read) and write the copy; returns the rescaled model (None when cancelled)."""
    from napari_zfocus.model.aperture import aperture_distance_scale
    from napari_zfocus.model.io import save_rescaled_copy

    yield 0, 1
    scale = aperture_distance_scale(predictor.config, condenser_na, model_path)
    if cancel.is_set():
        return None
    save_rescaled_copy(model_path, scale, out)
    return Rescaled(load_model_job(out), scale)


@dataclass(frozen=True)
class Calibrated:
    """A model calibrated in a worker: the new file, loaded, and its calibration."""

    loaded: LoadedModel
    calibration: Any


def calibrate_job(
    model_path: Path, folder: Path, out: Path, cancel: threading.Event,
) -> Generator[tuple[int, int], None, Calibrated | None]:
    """Calibrate the model file on the annotated stacks of ``folder``; write the copy.

    Yields ``(images read, images)``; returns the calibrated model, or None when cancelled
    while the images were read (nothing is written then).
    """
    from napari_zfocus.data import read_dataset
    from napari_zfocus.model.io import load_model
    from napari_zfocus.training.calibrate_file import iter_calibrate_model_file

    loaded = load_model(model_path)
    dataset = read_dataset(folder)
    calibration = yield from iter_calibrate_model_file(loaded, dataset, out,
                                                       cancel=cancel.is_set)
    if calibration is None:
        return None
    return Calibrated(load_model_job(out), calibration)


def predict_job(predictor: Any, plane: Any, pixel_size_um: float) -> Any:
    """The prediction for one plane (a lazy dask slice is read here, off the GUI thread)."""
    return predictor.predict(np.asarray(plane), pixel_size_um)


def focus_map_job(
    predictor: Any, plane: Any, pixel_size_um: float, tile_um: float | None,
    stride_um: float | None, cancel: threading.Event,
) -> Generator[tuple[int, int], None, Any]:
    """Tiled prediction over a plane; yields ``(done, total)``, returns the map or None."""
    image = np.asarray(plane)  # a lazy (dask) slice is read here, off the GUI thread
    result = yield from predictor.iter_predict_tiles(
        image, pixel_size_um, tile_um, stride_um, cancel=cancel
    )
    return result


def evaluate_job(
    predictor: Any, folder: str, baselines: bool, cancel: threading.Event
) -> Generator[Any, None, Any]:
    """Evaluate on a dataset folder; yields progress events; returns the ``EvaluationResult``.

    Raises
    ------
    DatasetError
        The folder has no annotated stack, a stack with too few slices within the model's
        z range (the rule of ``zfocus eval``), or no slice within it at all.
    """
    from napari_zfocus.data.annotations import read_dataset
    from napari_zfocus.inspection.evaluation import iter_evaluate
    from napari_zfocus.training.calibrate_file import check_z_coverage

    dataset = read_dataset(folder)
    if len(dataset) == 0:
        raise DatasetError(f"{dataset.csv_path}: no annotated stacks to evaluate")
    check_z_coverage(dataset, predictor.config)
    result = yield from iter_evaluate(predictor, dataset, baselines=baselines, cancel=cancel)
    if result.metrics.get("n_images", 0) == 0 and not result.cancelled:
        raise DatasetError(
            f"{folder}: no slice lies inside the model's z range "
            f"({predictor.config.z_min_um:+g}..{predictor.config.z_max_um:+g} um)"
        )
    return result
