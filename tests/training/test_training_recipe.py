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
