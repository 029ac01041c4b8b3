"""The training budget and the learning-rate schedule that spans it.

Training stops at ``steps`` optimiser steps or ``minutes`` of wall-clock time, whichever
comes first; :class:`Budget` turns both into one fraction "used so far", which drives the
progress bar, the stop and :func:`lr_at` (linear warm-up, then cosine decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from napari_zfocus.training.train_config import TrainConfig

__all__ = ["Budget", "lr_at"]


def lr_at(progress: float, config: TrainConfig) -> float:
    """Learning rate at a fraction ``progress`` of the budget: linear warm-up, cosine decay."""
    p = min(max(progress, 0.0), 1.0)
    base, w = config.lr, config.warmup_fraction
    if w > 0 and p < w:
        return base * (0.05 + 0.95 * p / w)
    q = (p - w) / (1.0 - w) if w < 1 else 1.0
    final = base * config.final_lr_fraction
    return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * q))


@dataclass
class Budget:
    """A step and/or wall-clock budget.

    Attributes
    ----------
    steps
        Step budget, or None.
    seconds
        Wall-clock budget (s, counted from the start of the first run), or None.
    schedule_t0
        Elapsed time (s) when the first step began, i.e. after the first run's data
        loading: a time budget's schedule spans what is left after it. None before.
    """

    steps: int | None
    seconds: float | None
    schedule_t0: float | None = None

    @classmethod
    def of(cls, config: TrainConfig, schedule_t0: float | None = None) -> Budget:
        """The budget of ``config`` (``schedule_t0`` from a resumed checkpoint)."""
        seconds = config.minutes * 60.0 if config.minutes is not None else None
        return cls(config.steps, seconds, schedule_t0)

    def progress(self, step: int, elapsed_s: float) -> float:
        """Fraction of the budget used after ``step`` steps and ``elapsed_s`` seconds, 0..1."""
        p = step / self.steps if self.steps else 0.0
        if self.seconds is not None and self.schedule_t0 is not None:
            # The schedule spans the time left after data loading of the first run.
            span = max(self.seconds - self.schedule_t0, 1e-9)
            p = max(p, (elapsed_s - self.schedule_t0) / span)
        elif self.seconds is not None:
            p = max(p, elapsed_s / self.seconds)
        return min(max(p, 0.0), 1.0)
