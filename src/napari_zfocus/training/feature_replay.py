"""Feature replay: many classifier updates per batch of images, for fixed-feature networks.

The feature network (``architecture="feature_mlp"``) computes fixed defocus features
(:mod:`napari_zfocus.model.defocus_features`, no trainable parameters) and trains only a
small classifier on them. Computing the features of a 250 px image costs ~5 ms on a CPU
core; a classifier update on 256 feature vectors costs about as much as the features of
one image. Training on each image batch's features once would spend 97 % of the budget
on features and leave the classifier under-trained (measured: 63 % against 68 % within
+/-1 um on the waveorder world, README "Benchmarks").

So each step computes the features of one fresh batch of augmented images, adds them to
a ring buffer of the newest :data:`REPLAY_CAPACITY` feature vectors with their soft
targets, and makes :data:`REPLAY_UPDATES` classifier updates on batches of
:data:`REPLAY_BATCH` drawn from it. The buffer at step ``k`` is a pure function of the run's
seed and ``k`` (the image batches are), so a resumed run refills it exactly
(:meth:`FeatureReplay.refill`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["REPLAY_BATCH", "REPLAY_CAPACITY", "REPLAY_UPDATES", "FeatureReplay",
           "extracts_features"]

#: Feature vectors kept (the newest): 512 batches of 32 images.
REPLAY_CAPACITY = 16_384
#: Classifier updates per training step.
REPLAY_UPDATES = 8
#: Feature vectors per classifier update.
REPLAY_BATCH = 256


def extracts_features(net: nn.Module) -> bool:
    """Whether ``net`` has fixed features to replay (an ``extract_features`` method)."""
    return callable(getattr(net, "extract_features", None))


class FeatureReplay:
    """Ring buffer of feature vectors and their soft targets.

    Parameters
    ----------
    capacity
        Vectors kept (default :data:`REPLAY_CAPACITY`); the oldest are overwritten first.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = int(REPLAY_CAPACITY if capacity is None else capacity)
        self.features: torch.Tensor | None = None
        self.targets: torch.Tensor | None = None
        self.added = 0  # vectors ever added: vector i sits in slot i % capacity

    def add(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        """Store a batch (``(N, F)`` features, ``(N, B)`` targets), overwriting the oldest."""
        features, targets = features.detach().float(), targets.detach().float()
        if self.features is None or self.targets is None:
            self.features = features.new_empty((self.capacity, features.shape[1]))
            self.targets = targets.new_empty((self.capacity, targets.shape[1]))
        n = int(features.shape[0])
        idx = (self.added + torch.arange(n, device=self.features.device)) % self.capacity
        keep = slice(max(0, n - self.capacity), n)  # a batch larger than the buffer
        self.features[idx[keep]] = features[keep].to(self.features.device)
        self.targets[idx[keep]] = targets[keep].to(self.targets.device)
        self.added += n

    @property
    def size(self) -> int:
        """Vectors stored."""
        return min(self.added, self.capacity)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` stored (features, targets) drawn with replacement."""
        if self.features is None or self.targets is None or self.size == 0:
            raise RuntimeError("the feature replay is empty: add a batch first")
        idx = torch.from_numpy(rng.integers(0, self.size, size=n))
        return self.features[idx], self.targets[idx]

    def refill(self, make_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
               extract: Callable[[torch.Tensor], torch.Tensor], step: int, batch: int) -> None:
        """Rebuild the buffer of step ``step``: the features of the image batches of the
        steps before it that still fit (``make_batch(k)`` is a pure function of ``k``)."""
        first = max(0, step - -(-self.capacity // max(batch, 1)))
        # The slots as the uninterrupted run filled them: batch k went to k * batch on.
        self.added = first * batch
        for k in range(first, step):
            x, target = make_batch(k)
            with torch.no_grad():
                self.add(extract(x), target)
