"""Training data held in memory at the model's resolution, and batch sampling.

Every training stack is read and resampled to ``config.pixel_size_um`` ONCE (not every
step): on 2 CPU cores resampling a 2080 x 1552 frame costs more than the rest of the data
pipeline. Slices are kept as float16 after a per-slice z-score. That pre-scaling is free
of consequences because the network input is z-scored again per crop (an affine change of
the slice cancels), and it keeps raw 16-bit counts (up to 65535) clear of float16's
maximum of 65504.

Sampling follows the paper: a random slice from a random training stack, a random crop of
``config.input_px`` pixels, a random flip and 90-degree rotation, then per-image
normalisation. Validation uses :func:`napari_zfocus.model.preprocess.prepare` on the raw
slice, i.e. exactly what :class:`~napari_zfocus.model.inference.Predictor` does.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from napari_zfocus._generators import run_to_end
from napari_zfocus.errors import DatasetError, ZFocusError
from napari_zfocus.model.aperture import label_scale
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.preprocess import prepare, resample
from napari_zfocus.training.augment import photometric as augment_photometric


@dataclass
class CachedStack:
    """One training stack at the model's pixel size.

    Attributes
    ----------
    name
        The annotation's stack path (relative to the dataset folder).
    data
        float16 (Z, Y, X), each slice z-scored.
    z_um
        float64 (Z,) every slice's label: its defocus in the model's units, um
        (:func:`slice_z`).
    """

    name: str
    data: np.ndarray
    z_um: np.ndarray


def zscore_images(images: np.ndarray) -> np.ndarray:
    """Per-image z-score of float32 ``(N, H, W)`` images, in place; returns them.

    The same rule as :func:`napari_zfocus.model.preprocess.normalise` (population
    standard deviation, a near-constant image maps to zeros), written with numpy because
    it is ~5x faster than torch's reductions for a training batch on one core (21 vs
    108 ms for 32 x 250 x 250 px), and it runs in the prefetch thread.
    """
    flat = images.reshape(len(images), -1)
    mean = flat.mean(axis=1, dtype=np.float64)
    flat -= mean.astype(np.float32)[:, None]
    std = np.sqrt(np.einsum("ij,ij->i", flat, flat, dtype=np.float64) / max(flat.shape[1], 1))
    floor = 1e-5 * (np.abs(mean) + 1.0)
    std = np.where(std > floor, std, 1.0)
    flat /= std.astype(np.float32)[:, None]
    return images


def split_by_stack(
    annotations: Sequence[Any], val_fraction: float, seed: int
) -> tuple[list[Any], list[Any]]:
    """Random split of annotated stacks into training and validation stacks.

    The split is by STACK, never by image: neighbouring slices of one stack look alike,
    so an image-level split would leak the answer into validation.

    Parameters
    ----------
    annotations
        One entry per stack.
    val_fraction
        Fraction of stacks held out, 0 <= f < 1. With at least two stacks and f > 0 at
        least one stack is held out and at least one is kept for training.
    seed
        Seed of the permutation (the same seed gives the same split).

    Returns
    -------
    (train, val)
        Lists of annotations, each in the original order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"validation fraction must be in [0, 1), got {val_fraction}")
    n = len(annotations)
    n_val = int(round(n * val_fraction))
    n_val = min(max(n_val, 1), n - 1) if val_fraction > 0 and n >= 2 else 0
    order = np.random.default_rng([int(seed), 0x5EED]).permutation(n)
    val_idx = set(order[:n_val].tolist())
    train = [a for i, a in enumerate(annotations) if i not in val_idx]
    val = [a for i, a in enumerate(annotations) if i in val_idx]
    return train, val


def slice_z(annotation: Any, n_slices: int, config: ModelConfig,
            source: Any = "annotations.csv") -> np.ndarray:
    """Every slice's label: its defocus in the model's units (um; for a model with a
    reference condenser aperture, scaled by the stack's aperture, :mod:`~napari_zfocus.
    model.aperture`).

    Raises
    ------
    DatasetError
        The model needs the stack's aperture and ``annotations.csv`` gives none.
    """
    scale = label_scale(config, annotation, source)
    return ((np.arange(n_slices) - int(annotation.focus_index))
            * float(annotation.z_step_um) * scale)


def slice_in_range(z_um: np.ndarray, config: ModelConfig) -> np.ndarray:
    """Which slices (of defocus ``z_um``) can be labelled: inside the model's z range."""
    # Half a bin of slack: the outermost bins' centres are z_min and z_max.
    half = 0.5 * config.bin_um
    return (z_um >= config.z_min_um - half) & (z_um <= config.z_max_um + half)


def load_stack_cached(dataset: Any, annotation: Any, config: ModelConfig) -> CachedStack:
    """Read one annotated stack and bring it to the model's grid (float16, z-scored slices).

    Raises
    ------
    DatasetError
        When the resampled stack is smaller than the model's input.
    """
    stack = dataset.open_stack(annotation)
    raw = np.asarray(stack.to_numpy(), dtype=np.float32)
    if raw.ndim != 3:
        raise DatasetError(f"{annotation.stack}: expected a (Z, Y, X) stack, got shape {raw.shape}")
    try:
        x = resample(raw, float(annotation.pixel_size_um), config.pixel_size_um)[0]  # (Z, Y, X)
    except ZFocusError as exc:  # pixel size too far from the model's: name the stack
        raise DatasetError(f"{annotation.stack}: {exc}") from None
    n = config.input_px
    if x.shape[-1] < n or x.shape[-2] < n:
        h, w = raw.shape[-2:]
        px = float(annotation.pixel_size_um)
        raise DatasetError(
            f"{annotation.stack}: {h} x {w} px at {px:g} um/px "
            f"({h * px:.1f} x {w * px:.1f} um) is smaller than the model's field of "
            f"{config.field_um:g} um"
        )
    images = zscore_images(np.ascontiguousarray(x.numpy(), dtype=np.float32))  # see module doc
    return CachedStack(
        name=str(annotation.stack),
        data=images.astype(np.float16),
        z_um=slice_z(annotation, raw.shape[0], config),
    )


class TrainingData:
    """In-memory training stacks and the index of their usable slices.

    Parameters
    ----------
    stacks
        Cached stacks (see :func:`load_stack_cached`).
    config
        The model configuration (crop size, z range).
    """

    def __init__(self, stacks: Sequence[CachedStack], config: ModelConfig) -> None:
        self.stacks = list(stacks)
        self.config = config
        rows = []
        for s_idx, s in enumerate(self.stacks):
            for z_idx in np.flatnonzero(slice_in_range(s.z_um, config)):
                rows.append((s_idx, int(z_idx)))
        # Slices whose true z lies outside the model's range cannot be labelled: skipped.
        self.index = np.asarray(rows, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        """Number of usable training images (slices in the z range)."""
        return len(self.index)

    @property
    def nbytes(self) -> int:
        """Memory held by the cached slices."""
        return sum(s.data.nbytes for s in self.stacks)

    def sample(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        augment: bool = True,
        photometric: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw a random batch.

        Parameters
        ----------
        rng
            The generator to draw from (seeded per step by the training loop, which makes
            batches independent of prefetching and resumable).
        n
            Batch size.
        augment
            Random flip and 90-degree rotation (the 8 symmetries of the square).
        photometric
            Also the random camera / optics changes of
            :func:`napari_zfocus.training.augment.photometric`.

        Returns
        -------
        (x, z_um)
            float32 ``(n, 1, input_px, input_px)`` normalised images and float32 ``(n,)``
            true defocus in um.
        """
        if len(self.index) == 0:
            raise DatasetError("no training slices inside the model's z range")
        c = self.config.input_px
        rows = self.index[rng.integers(0, len(self.index), size=n)]
        # Offsets drawn as fractions so stacks of different sizes share one vectorised draw.
        u = rng.random((n, 2))
        sym = rng.integers(0, 8, size=n)
        out = np.empty((n, c, c), dtype=np.float32)
        z = np.empty(n, dtype=np.float32)
        for i, (s_idx, z_idx) in enumerate(rows):
            s = self.stacks[s_idx]
            h, w = s.data.shape[-2:]
            top = int(u[i, 0] * (h - c + 1))
            left = int(u[i, 1] * (w - c + 1))
            crop = s.data[z_idx, top : top + c, left : left + c]
            if augment:
                crop = np.rot90(crop, int(sym[i]) & 3)
                if sym[i] >= 4:
                    crop = crop[:, ::-1]
            out[i] = crop
            z[i] = s.z_um[z_idx]
        if photometric:
            augment_photometric(out, rng)
        return torch.from_numpy(zscore_images(out)).unsqueeze(1), torch.from_numpy(z)


def load_training_data(
    dataset: Any,
    annotations: Sequence[Any],
    config: ModelConfig,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingData:
    """Read and cache the given stacks; ``progress(done, total)`` after each one."""
    stacks = []
    for i, a in enumerate(annotations):
        stacks.append(load_stack_cached(dataset, a, config))
        if progress is not None:
            progress(i + 1, len(annotations))
    return TrainingData(stacks, config)


def validation_images(
    dataset: Any, annotations: Sequence[Any], config: ModelConfig, max_images: int
) -> tuple[torch.Tensor, np.ndarray]:
    """Centre crops of the validation stacks, prepared exactly as for inference.

    All in-range slices of every validation stack, evenly thinned to at most
    ``max_images`` (deterministic, so metrics are comparable between validations).

    Returns
    -------
    (x, z_um)
        float16 ``(N, 1, n, n)`` network inputs (half the memory; cast back before use)
        and float64 ``(N,)`` true defocus.
    """
    x, z, _ = images_by_stack(dataset, annotations, config, max_images)
    return x, z


def images_by_stack(
    dataset: Any, annotations: Sequence[Any], config: ModelConfig, max_images: int
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """:func:`validation_images` and the index (into ``annotations``) of each image's stack."""
    images = run_to_end(iter_images_by_stack(dataset, annotations, config, max_images))
    assert images is not None  # only a cancel returns None, and none was given
    return images


#: Images prepared between two progress events of :func:`iter_images_by_stack`.
_PROGRESS_EVERY = 64


def iter_images_by_stack(
    dataset: Any, annotations: Sequence[Any], config: ModelConfig, max_images: int,
    cancel: Callable[[], bool] | None = None,
) -> Generator[tuple[int, int], None, tuple[torch.Tensor, np.ndarray, np.ndarray] | None]:
    """Generator form of :func:`images_by_stack` for workers: yields ``(images done,
    images)`` as it reads, returns the images, or None when ``cancel()`` turns true."""
    pairs = []
    for k, a in enumerate(annotations):
        stack = dataset.open_stack(a)
        z = slice_z(a, stack.n_slices, config)
        for idx in np.flatnonzero(slice_in_range(z, config)):
            pairs.append((a, stack, int(idx), float(z[idx]), k))
    if len(pairs) > max_images > 0:
        keep = np.unique(np.linspace(0, len(pairs) - 1, max_images).round().astype(int))
        pairs = [pairs[i] for i in keep]
    n = config.input_px
    x = torch.empty((len(pairs), 1, n, n), dtype=torch.float16)
    for i, (a, stack, index, _, _) in enumerate(pairs):
        if i % _PROGRESS_EVERY == 0:
            if cancel is not None and cancel():
                return None
            yield i, len(pairs)
        x[i] = prepare(stack.slice(index), float(a.pixel_size_um), config)[0].to(torch.float16)
    return (x, np.asarray([p[3] for p in pairs], dtype=np.float64),
            np.asarray([p[4] for p in pairs], dtype=np.int64))
