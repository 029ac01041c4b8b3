"""The data plan of a run (which stacks validate) and the dataset checks before loading;
the rule that picks the best validation."""

from __future__ import annotations

import math

import pytest

from _tiny import write_noise_dataset
from napari_zfocus.data import read_dataset
from napari_zfocus.errors import DatasetError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.training.data_plan import check_dataset_fits, plan_stacks
from napari_zfocus.training.keep_best import better
from napari_zfocus.training.loop import TrainConfig

SMALL = ModelConfig(pixel_size_um=1.0, field_um=32.0, z_min_um=-5.0, z_max_um=5.0,
                    conv_features=(4, 8), kernel_size=5, pool_size=4, fc_features=16)


@pytest.mark.parametrize(("n", "threshold", "val_fraction", "on_training", "text"), [
    (2, 5, 0.1, True, "training stacks (too few to hold out: 2)"),
    (4, 5, 0.1, True, "training stacks (too few to hold out: 4)"),
    (5, 5, 0.1, False, "held-out stacks (1)"),
    (20, 5, 0.2, False, "held-out stacks (4)"),
    (2, 0, 0.1, False, "held-out stacks (1)"),  # scratch runs: the old rule
    (1, 0, 0.1, False, "nothing (1 stack, none to hold out)"),
    (3, 5, 0.0, False, "nothing (val_fraction 0)"),
])
def test_plan_holds_out_stacks_only_from_the_threshold_on(n, threshold, val_fraction,
                                                          on_training, text):
    stacks = [f"s{i}" for i in range(n)]
    tc = TrainConfig(steps=1, holdout_min_stacks=threshold, val_fraction=val_fraction)
    plan = plan_stacks(stacks, tc)
    assert plan.on_training is on_training and plan.validation_on == text
    if on_training:
        assert plan.train == plan.val == stacks
    else:
        assert sorted(plan.train + plan.val) == sorted(stacks)
        assert not set(plan.train) & set(plan.val)


#: A model of the side above focus only: stacks focused on their last slice have no z > 0.
ABOVE = ModelConfig(**{**SMALL.to_dict(), "z_min_um": 1.0, "z_max_um": 5.0})


@pytest.mark.parametrize(("shape", "pixel", "focus", "config", "words"), [
    ((11, 20, 40), 1.0, 5, SMALL, "s0.tif: 20 x 40 px at 1 um/px (20.0 x 40.0 um) is smaller"),
    ((11, 40, 40), 9.0, 5, SMALL, "s0.tif: pixel size 9 um/px"),
    ((5, 40, 40), 1.0, 4, ABOVE, "no slice of its 2 stacks lies inside the model's z range 1..5"),
])
def test_a_dataset_that_cannot_fit_the_model_is_named(tmp_path, shape, pixel, focus, config,
                                                      words):
    ds = read_dataset(write_noise_dataset(tmp_path / "ds", 2, shape, focus,
                                          pixel_size_um=pixel))
    with pytest.raises(DatasetError) as info:
        check_dataset_fits(ds, list(ds.annotations), config)
    line = str(info.value)
    assert line.startswith(str(ds.root)) and words in line and "\n" not in line


def test_a_fitting_dataset_passes(tmp_path):
    ds = read_dataset(write_noise_dataset(tmp_path / "ds", 2, (11, 40, 40), 5,
                                          pixel_size_um=1.0))
    check_dataset_fits(ds, list(ds.annotations), SMALL)


def test_best_is_the_lowest_median_error_then_the_most_within_one_um():
    a = {"median_abs_error_um": 1.0, "within_1um": 0.5}
    assert better(a, None) and better(a, {})
    assert better({"median_abs_error_um": 0.9, "within_1um": 0.1}, a)
    assert not better({"median_abs_error_um": 1.1, "within_1um": 0.9}, a)
    assert better({"median_abs_error_um": 1.0, "within_1um": 0.6}, a)  # the tie-break
    assert not better(dict(a), a)  # equal is not better: the earlier weights stay
    assert not better({"median_abs_error_um": math.nan}, a)
