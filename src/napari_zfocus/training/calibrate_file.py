"""Calibrate a model file on annotated stacks: ``zfocus calibrate`` and the inspection dock.

For a model trained before calibration existed, or to calibrate one on more held-out
stacks of its own world than the few validation stacks of its training run (which leave
the confidence and the out-of-distribution threshold noisy: README, "Calibrated
confidence"). The centre field of every slice within the model's z range is used (at
most ``max_images``, evenly thinned); here one set of stacks serves as both the held-out
images and the world's reference. The weights are copied bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import torch

from napari_zfocus.errors import DatasetError, ZFocusError, describe
from napari_zfocus.model.calibration import Calibration
from napari_zfocus.model.io import LoadedModel, save_calibrated_copy
from napari_zfocus.model.ood import spectral_features
from napari_zfocus.training.calibration_fit import calibrate_network
from napari_zfocus.training.dataset_cache import iter_images_by_stack
from napari_zfocus.training.train_config import CALIBRATION_MAX_IMAGES

__all__ = ["MIN_SLICES_IN_RANGE", "check_z_coverage", "iter_calibrate_model_file"]

#: Fewest slices of a stack within the model's z range for it to be evaluated or used.
MIN_SLICES_IN_RANGE = 2


def check_z_coverage(dataset: Any, config: Any) -> None:
    """Refuse a stack with fewer than :data:`MIN_SLICES_IN_RANGE` slices in the model's z range.

    Such a stack only tests z = 0 (its z-step is coarser than the model's whole range),
    and a dataset of them gives metrics over a handful of images that look meaningful.
    Only stack headers are read.

    Raises
    ------
    DatasetError
        Naming ``annotations.csv``, the stack, its z-step and the model's z range.
    """
    eps = 1e-6 * max(1.0, config.bin_um)  # as the evaluation itself counts them
    for a in dataset:
        n = dataset.open_stack(a).n_slices
        z = [(i - a.focus_index) * a.z_step_um for i in range(n)]
        inside = sum(config.z_min_um - eps <= v <= config.z_max_um + eps for v in z)
        if inside < MIN_SLICES_IN_RANGE:
            raise DatasetError(describe(
                dataset.csv_path,
                f"{a.stack}: only {inside} of its {n} slices lie within the model's z range "
                f"{config.z_min_um:g}..{config.z_max_um:g} um at z-step {a.z_step_um:g} um; "
                f"at least {MIN_SLICES_IN_RANGE} per stack are needed",
            ))


def iter_calibrate_model_file(
    loaded: LoadedModel, dataset: Any, out: str | Path, *,
    max_images: int = CALIBRATION_MAX_IMAGES, device: torch.device | None = None,
    source: str | None = None, cancel: Callable[[], bool] | None = None,
) -> Generator[tuple[int, int], None, Calibration | None]:
    """Calibrate the model ``loaded`` from its file on ``dataset`` (a read
    :class:`~napari_zfocus.data.Dataset`) and write the calibrated copy to ``out`` (checked
    by the caller: see :func:`napari_zfocus.outputs.check_model_copy`).

    Yields ``(images read, images)``; returns the calibration, or None when ``cancel()``
    turned true while the images were read (nothing is written then).

    Raises
    ------
    ZFocusError
        A stack the model cannot use (named), or a model not read from a file.
    """
    if loaded.path is None:
        raise ZFocusError("only a model read from a file can be calibrated into a copy")
    check_z_coverage(dataset, loaded.config)
    images = yield from iter_images_by_stack(dataset, list(dataset.annotations),
                                             loaded.config, max_images, cancel=cancel)
    if images is None:
        return None
    x, z, stacks = images
    # channels_last: the layout of the inputs, and oneDNN's fastest on CPU.
    net = loaded.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    calibration = calibrate_network(
        net, loaded.config, device if device is not None else torch.device("cpu"), x, z,
        (spectral_features(x), z, stacks), source=source or f"dataset {dataset.root}")
    save_calibrated_copy(loaded.path, calibration, out)  # the weights, bit for bit
    return calibration
