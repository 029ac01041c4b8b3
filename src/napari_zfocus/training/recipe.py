"""Training recipes: the paper's settings, the fast default, fine-tuning, the validation cadence.

The training dock (and any script) turns a handful of user choices into a validated
:class:`~napari_zfocus.training.loop.TrainConfig` here, so the rules (what "paper recipe"
means, how often to validate for a live curve) live in one Qt-free place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import ModelConfig

if TYPE_CHECKING:
    from napari_zfocus.training.loop import TrainConfig

#: Settings of the paper's recipe (Wei & Roberts 2018): batch 50, Adam lr 1e-4,
#: 100,000 steps, truncated-normal init (sd 0.1), one-hot labels.
PAPER_RECIPE: dict[str, Any] = {
    "batch": 50, "lr": 1e-4, "steps": 100_000, "init": "paper", "label_sigma_um": 0.0,
}

#: Time budget of the fast recipe, minutes (a CPU budget: a usable model in minutes).
FAST_MINUTES = 10.0

#: What starting from a model on a few annotated stacks changes (``zfocus train --from``,
#: the dock's "start from"); explicit settings win. A lower peak learning rate and a short
#: warm-up keep what the start model knows instead of shaking it loose in the first
#: steps. The last weights are written and nothing stops early, unless asked
#: (``--keep-best``, ``--patience N``): under the cosine schedule the validation plateaus
#: while the rate is still high, so with patience 5 every measured run stopped at 1200-1300
#: steps of 2000-6764 (1.3 points lower on 80 stacks), and on 10 stacks the best of one
#: held-out stack's validations was an early step (41.1 % within +/-1 um against 46.6 % for
#: the last weights); on 80 stacks the best was the last step anyway;
#: below 5 stacks none is held out (one held-out stack of 3 says little, and costs a
#: third of the data): validation then runs on the training stacks and says so.
#: Photometric augmentation is off, as for scratch runs: on 10 waveorder stacks from the
#: base it cost 2.8 points (41.5 % against 44.3 % within +/-1 um), and from scratch at a
#: fixed budget 10-11 (README, "Beyond our own simulator").
FINE_TUNE_RECIPE: dict[str, Any] = {
    "lr": 3e-4, "warmup_fraction": 0.02, "photometric": False, "keep_best": False,
    "patience": 0, "holdout_min_stacks": 5,
}


def fine_tune_settings(start_from: str | None, given: dict[str, Any]) -> dict[str, Any]:
    """:class:`TrainConfig` keywords: ``given`` (unset: ``None``) over the fine-tuning
    defaults when starting from a model, else ``given`` alone (the plain defaults)."""
    chosen = {k: v for k, v in given.items() if v is not None}
    if start_from is None:
        return chosen
    return {**FINE_TUNE_RECIPE, **chosen, "start_from": start_from}


@dataclass(frozen=True)
class RecipeForm:
    """The form values a recipe sets (what the dock shows when the recipe is chosen).

    ``steps`` 0 and ``minutes`` 0 mean "no limit" (as the dock's fields show them).
    """

    batch: int
    lr: float
    steps: int
    minutes: float
    pixel_size_um: float
    batchnorm: bool
    architecture: str


def recipe_form(paper: bool, fine_tune: bool = False) -> RecipeForm:
    """The form values of the paper recipe (``paper``) or of the fast default recipe;
    ``fine_tune`` (starting from a model): the fast recipe at the fine-tuning rate."""
    if paper:
        model = ModelConfig()
        return RecipeForm(
            batch=int(PAPER_RECIPE["batch"]), lr=float(PAPER_RECIPE["lr"]),
            steps=int(PAPER_RECIPE["steps"]), minutes=0.0,
            pixel_size_um=model.pixel_size_um, batchnorm=model.batchnorm,
            architecture=model.architecture,
        )
    from napari_zfocus.training.loop import TrainConfig

    defaults = TrainConfig()
    start = ModelConfig.recommended()
    return RecipeForm(
        batch=defaults.batch,
        lr=float(FINE_TUNE_RECIPE["lr"]) if fine_tune else defaults.lr,
        steps=0, minutes=FAST_MINUTES,
        pixel_size_um=start.pixel_size_um, batchnorm=start.batchnorm,
        architecture=start.architecture,
    )


def validation_every_for(steps: int | None) -> int:
    """Steps between validations: about 20 points per run for the live curve (10..500).

    A time-only budget (``steps`` None) validates every 100 steps.
    """
    return min(500, max(10, steps // 20)) if steps else 100


def build_train_config(
    out: str | Path,
    *,
    steps: int | None,
    minutes: float | None,
    batch: int,
    lr: float,
    seed: int,
    paper: bool = False,
    resume: bool = False,
    start_from: str | None = None,
) -> TrainConfig:
    """A validated :class:`TrainConfig` from the dock's choices.

    ``steps`` / ``minutes`` of 0 or None mean "no limit". The paper recipe adds its
    initialisation and one-hot labels. ``start_from`` (``"base"`` or a model file)
    adds :data:`FINE_TUNE_RECIPE` except the learning rate, which the dock shows and
    sets itself (:func:`recipe_form` with ``fine_tune``).

    Raises
    ------
    ZFocusError
        No output path, or a setting out of range (named).
    """
    from napari_zfocus.training.loop import TrainConfig

    if not str(out).strip():
        raise ZFocusError("choose the model file to write")
    extra: dict[str, Any] = {"lr": lr}
    if paper:
        extra.update(init=PAPER_RECIPE["init"], label_sigma_um=PAPER_RECIPE["label_sigma_um"])
    config = TrainConfig(
        out=Path(str(out).strip()),
        validation_every=validation_every_for(steps or None),
        steps=steps or None,
        minutes=minutes or None,
        batch=batch,
        seed=seed,
        resume=resume,
        **fine_tune_settings(start_from, extra),
    )
    config.validate()
    return config
