"""Training recipes and the validation cadence, without Qt."""

from __future__ import annotations

import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.training.recipe import (
    PAPER_RECIPE,
    build_train_config,
    recipe_form,
    validation_every_for,
)


def test_paper_and_fast_recipes():
    paper = recipe_form(paper=True)
    assert (paper.batch, paper.lr, paper.steps, paper.minutes) == (50, 1e-4, 100_000, 0.0)
    assert (paper.pixel_size_um, paper.batchnorm) == (0.24, False)
    fast = recipe_form(paper=False)
    recommended = ModelConfig.recommended()
    assert (fast.pixel_size_um, fast.batchnorm) == (recommended.pixel_size_um,
                                                    recommended.batchnorm)
    assert fast.steps == 0 and fast.minutes > 0


@pytest.mark.parametrize(("steps", "every"), [(None, 100), (0, 100), (6, 10), (4000, 200),
                                              (100_000, 500)])
def test_validation_cadence_gives_about_twenty_points(steps, every):
    assert validation_every_for(steps) == every


def test_build_train_config(tmp_path):
    config = build_train_config(tmp_path / "m.zfm", steps=0, minutes=5.0, batch=8, lr=1e-3,
                                seed=1, paper=True, resume=True)
    assert config.steps is None and config.minutes == 5.0 and config.resume
    assert (config.init, config.label_sigma_um) == (PAPER_RECIPE["init"], 0.0)
    with pytest.raises(ZFocusError, match="model file"):
        build_train_config("  ", steps=10, minutes=0, batch=8, lr=1e-3, seed=0)
    with pytest.raises(ZFocusError, match="budget"):
        build_train_config(tmp_path / "m.zfm", steps=0, minutes=0, batch=8, lr=1e-3, seed=0)


def test_fine_tuning_sets_defaults_that_explicit_settings_override(tmp_path):
    from napari_zfocus.training.loop import TrainConfig
    from napari_zfocus.training.recipe import FINE_TUNE_RECIPE, fine_tune_settings

    assert fine_tune_settings(None, {"lr": None, "patience": 3}) == {"patience": 3}
    settings = fine_tune_settings("base", {"lr": None, "patience": 4, "keep_best": True})
    assert settings["start_from"] == "base" and settings["lr"] == FINE_TUNE_RECIPE["lr"]
    assert settings["patience"] == 4 and settings["keep_best"] is True  # typed: they win
    assert settings["photometric"] is False and settings["holdout_min_stacks"] == 5
    scratch = TrainConfig()
    assert FINE_TUNE_RECIPE["lr"] < scratch.lr  # keep what the start model knows
    assert FINE_TUNE_RECIPE["warmup_fraction"] < scratch.warmup_fraction
    assert (scratch.keep_best, scratch.patience, scratch.holdout_min_stacks,
            scratch.start_from) == (False, 0, 0, None)  # scratch runs: as before


def test_build_train_config_from_a_model(tmp_path):
    config = build_train_config(tmp_path / "m.zfm", steps=0, minutes=3.0, batch=8, lr=1e-4,
                                seed=0, start_from="base")
    assert config.start_from == "base" and not config.keep_best and config.patience == 0
    assert config.lr == 1e-4  # the form's rate wins over the recipe's
    assert recipe_form(paper=False, fine_tune=True).lr == 3e-4
    plain = build_train_config(tmp_path / "m.zfm", steps=5, minutes=0, batch=8, lr=1e-3, seed=0)
    assert plain.start_from is None and not plain.keep_best and not plain.photometric


@pytest.mark.parametrize(("field", "value", "words"), [
    ("start_from", "  ", "start_from must be"), ("start_from", 3, "start_from must be"),
    ("patience", -1, "patience"), ("patience", 2.5, "patience"),
    ("holdout_min_stacks", -2, "holdout_min_stacks"), ("keep_best", "yes", "keep_best"),
])
def test_fine_tuning_settings_are_checked(tmp_path, field, value, words):
    from napari_zfocus.training.loop import TrainConfig

    with pytest.raises(ZFocusError, match=words):
        TrainConfig(out=tmp_path / "m.zfm", steps=1, **{field: value}).validate()
