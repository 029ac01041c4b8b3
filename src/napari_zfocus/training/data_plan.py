"""Which stacks train and which validate, and whether a dataset can fit the model at all.

Both are decided from the annotations and the stacks' headers, before a single image is
read and resampled (minutes on a large dataset): a dataset whose images are smaller than
the model's field, whose pixel size the model cannot reach, or whose slices all lie
outside the model's z range is refused at once, naming the dataset and the stack.

Validation is by held-out STACK (:func:`~napari_zfocus.training.dataset_cache.split_by_stack`).
With fewer annotated stacks than ``TrainConfig.holdout_min_stacks`` none is held out: the
run trains on all of them and validates on their own images, and :attr:`DataPlan.validation_on`
says so wherever the metrics are shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from napari_zfocus.errors import DatasetError, ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.preprocess import check_resampling, field_source_px
from napari_zfocus.training.dataset_cache import slice_in_range, slice_z, split_by_stack
from napari_zfocus.training.train_config import TrainConfig

__all__ = ["DataPlan", "check_dataset_fits", "plan_stacks"]


@dataclass(frozen=True)
class DataPlan:
    """The stacks a run trains and validates on.

    Attributes
    ----------
    train, val
        Annotations of the training and the validation stacks (the same list when
        :attr:`on_training`).
    on_training
        Whether validation uses the training stacks' own images (too few to hold out).
    validation_on
        What the metrics are computed on, for people: ``"held-out stacks (2)"``,
        ``"training stacks (too few to hold out: 3)"`` or ``"nothing (...)"``.
    """

    train: list[Any]
    val: list[Any]
    on_training: bool
    validation_on: str


def plan_stacks(annotations: Sequence[Any], tc: TrainConfig) -> DataPlan:
    """Split the annotated stacks for ``tc`` (see the module docstring)."""
    items = list(annotations)
    n = len(items)
    if tc.val_fraction > 0 and 0 < n < tc.holdout_min_stacks:
        return DataPlan(items, items, True,
                        f"training stacks (too few to hold out: {n})")
    train, val = split_by_stack(items, tc.val_fraction, tc.seed)
    if val:
        return DataPlan(train, val, False, f"held-out stacks ({len(val)})")
    why = "val_fraction 0" if tc.val_fraction == 0 else f"{n} stack, none to hold out"
    return DataPlan(train, val, False, f"nothing ({why})")


def check_dataset_fits(dataset: Any, annotations: Sequence[Any], config: ModelConfig) -> None:
    """Refuse a dataset the model cannot train on, from the stacks' headers only.

    Raises
    ------
    DatasetError
        ``"<dataset>: <stack>: ..."`` for a stack whose pixel size the model cannot
        resample, or whose images are smaller than the model's field; ``"<dataset>: no
        slice of its N stacks lies inside the model's z range ..."``.
    """
    root = getattr(dataset, "root", "dataset")
    inside = 0
    for a in annotations:
        stack = dataset.open_stack(a)  # lazy: the header only
        px = float(a.pixel_size_um)
        try:
            need = field_source_px(check_resampling(px, config.pixel_size_um), config)
        except ZFocusError as exc:
            # Coarse pixels (a 10x objective) are common and need only another network
            # input, not other data: say how to get one.
            hint = (f"; a network trained at this pixel size reads it (--pixel-size-um {px:g}, "
                    "the training dock's 'pixel size')" if px > config.pixel_size_um else "")
            raise DatasetError(f"{root}: {a.stack}: {exc}{hint}") from None
        _, h, w = stack.shape
        if h < need or w < need:
            raise DatasetError(
                f"{root}: {a.stack}: {h} x {w} px at {px:g} um/px ({h * px:.1f} x "
                f"{w * px:.1f} um) is smaller than the model's field of {config.field_um:g} um"
            )
        z = slice_z(a, stack.n_slices, config, getattr(dataset, "csv_path", root))
        inside += int(slice_in_range(z, config).sum())
    if annotations and inside == 0:
        raise DatasetError(
            f"{root}: no slice of its {len(annotations)} stacks lies inside the model's z "
            f"range {config.z_min_um:g}..{config.z_max_um:g} um (check focus_index and "
            "z_step_um, or use a model with a wider range)"
        )
