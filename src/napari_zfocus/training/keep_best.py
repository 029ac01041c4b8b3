"""Early stopping on validation: the best weights so far, and when to stop waiting for better.

A fine-tuning run on a few stacks over-fits them sooner or later; the validation error
then rises while the training loss still falls. :class:`BestWeights` keeps a copy of the
weights of the best validation (lowest median |error|; a tie goes to more images within
+/-1 um), counts the validations since, and says when ``patience`` of them brought no
improvement. The training loop writes those weights into the model file (the checkpoint
keeps the last ones, so ``--resume`` continues the run exactly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["BestWeights", "better"]

#: The validation metric that decides "best" (lower is better), and the tie-breaker.
PRIMARY, TIE_BREAK = "median_abs_error_um", "within_1um"


def better(new: dict[str, float], old: dict[str, float] | None) -> bool:
    """Whether validation metrics ``new`` beat ``old`` (``None``: nothing yet)."""
    a = new.get(PRIMARY, math.nan)
    if not math.isfinite(a):
        return False
    if not old:
        return True
    b = old.get(PRIMARY, math.nan)
    if not math.isfinite(b) or a < b - 1e-9:
        return True
    return abs(a - b) <= 1e-9 and new.get(TIE_BREAK, 0.0) > old.get(TIE_BREAK, 0.0) + 1e-9


@dataclass
class BestWeights:
    """The best validation of a run and (with ``keep``) a copy of its weights.

    Attributes
    ----------
    keep
        Copy the weights of each new best (to write them instead of the last ones).
    patience
        Validations without improvement after which :attr:`exhausted` is true (0: never).
    step, metrics
        Step and metrics of the best validation (``None`` / empty before the first).
    since_best
        Validations since the best one.
    """

    keep: bool
    patience: int
    step: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    since_best: int = 0
    weights: dict[str, torch.Tensor] | None = None

    def offer(self, step: int, metrics: dict[str, float], net: nn.Module) -> bool:
        """Record a validation of ``net`` at ``step``; True when it is the new best."""
        if not better(metrics, self.metrics or None):
            self.since_best += 1
            return False
        self.step, self.metrics, self.since_best = int(step), dict(metrics), 0
        if self.keep:
            self.weights = {k: v.detach().to("cpu", copy=True)
                            for k, v in net.state_dict().items()}
        return True

    @property
    def exhausted(self) -> bool:
        """Whether ``patience`` validations in a row brought no improvement."""
        return self.patience > 0 and self.since_best >= self.patience

    def restore(self, net: nn.Module) -> bool:
        """Load the best weights into ``net``; False when there are none to load."""
        if not self.keep or self.weights is None:
            return False
        net.load_state_dict(self.weights)
        return True

    def checkpoint_entries(self, **extra: Any) -> dict[str, Any]:
        """What a checkpoint keeps of it (``best_model`` only with kept weights);
        ``extra`` entries join the ``best`` JSON entry."""
        entries: dict[str, Any] = {
            "best": {"step": self.step, "metrics": self.metrics, **extra}}
        if self.keep and self.weights is not None:
            entries["best_model"] = self.weights
        return entries

    def resume_from(self, state: dict[str, Any]) -> None:
        """Take the best validation back from a checkpoint's entries. The patience
        count starts again: resuming asks for more training."""
        best = state.get("best") or {}
        if self.keep and state.get("best_model") is None:
            return  # a best without its weights could never be written: start afresh
        if best.get("step") is not None:
            self.step, self.metrics = int(best["step"]), dict(best.get("metrics") or {})
        if self.keep and state.get("best_model") is not None:
            self.weights = dict(state["best_model"])
