"""Calibrate a trained network: at the end of ``zfocus train`` and in ``zfocus calibrate``.

The temperature and the event map (:mod:`napari_zfocus.model.calibration`) are fitted on
held-out images of the model's world: the validation stacks of the training run (never
trained on). The out-of-distribution reference (:mod:`napari_zfocus.model.ood`) describes
what the model's world looks like, so it is fitted on as many images as there are: the
centre fields of every training slice (their spread over many stacks sets the threshold),
at their true z. The validation images, which the reference never saw, then tell how many
images of its own world the model flags (``fitted["flagged"]``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_zfocus.model.calibration import (
    FLAG_BELOW_CONFIDENCE,
    Calibration,
    fit_calibration,
)
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.ood import fit_ood_reference, spectral_features
from napari_zfocus.model.readout import readout
from napari_zfocus.training.dataset_cache import TrainingData, zscore_images
from napari_zfocus.training.validation_metrics import predict_logits

__all__ = ["MAX_REFERENCE_IMAGES", "calibrate_network", "describe_calibration",
           "reference_features"]

#: Most training slices whose spectra form the OOD reference (evenly thinned beyond).
MAX_REFERENCE_IMAGES = 20_000
#: Reference images prepared at once (bounds the memory of a large model input).
_CHUNK = 256


def reference_features(data: TrainingData, max_images: int = MAX_REFERENCE_IMAGES,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spectral features, true z and stack of the centre field of every training slice.

    The cached slices are already on the model's grid; the centre field is cut and
    z-scored exactly as the network input of :func:`~napari_zfocus.model.preprocess.prepare`.

    Returns
    -------
    (features, z_um, stacks)
        ``(N, bands)``, ``(N,)`` and ``(N,)`` (the index of each image's stack).
    """
    rows = data.index
    if len(rows) > max_images > 0:
        rows = rows[np.unique(np.linspace(0, len(rows) - 1, max_images).round().astype(int))]
    n = data.config.input_px
    feats, zs = [], []
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        crops = np.empty((len(chunk), n, n), dtype=np.float32)
        for i, (s_idx, z_idx) in enumerate(chunk):
            stack = data.stacks[s_idx]
            h, w = stack.data.shape[-2:]
            top, left = (h - n) // 2, (w - n) // 2
            crops[i] = stack.data[z_idx, top : top + n, left : left + n]
            zs.append(stack.z_um[z_idx])
        feats.append(spectral_features(zscore_images(crops)))
    bands = feats[0].shape[1] if feats else 0
    return (np.concatenate(feats) if feats else np.empty((0, bands)),
            np.asarray(zs, dtype=np.float64), rows[:, 0].copy())


def calibrate_network(
    net: nn.Module,
    config: ModelConfig,
    device: torch.device,
    val_x: torch.Tensor,
    val_z: np.ndarray,
    reference: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    *,
    channels_last: bool = True,
    source: str = "",
) -> Calibration:
    """Fit a network's calibration and OOD reference (see the module doc).

    Parameters
    ----------
    net
        The trained network.
    config
        Its configuration.
    device
        Where to run it.
    val_x, val_z
        Held-out network inputs ``(N, 1, n, n)`` (as :func:`validation_images` gives) and
        their true z.
    reference
        ``(features, z_um, stacks)`` of the images that describe the model's world
        (``stacks``: each image's stack, or ``None`` for images in stack order).
    channels_last
        Memory layout for the forward pass.
    source
        What the held-out images are, for the record (``"validation stacks"``).

    Raises
    ------
    ZFocusError
        Too few held-out images (:data:`~napari_zfocus.model.calibration.MIN_CALIBRATION_IMAGES`).
    """
    bins = config.bin_centres_um
    logits = predict_logits(net, val_x, device, channels_last=channels_last)
    probs = torch.softmax(logits.double(), dim=1).numpy()
    ood = fit_ood_reference(reference[0], reference[1], bins, groups=reference[2])
    calibration = fit_calibration(probs, val_z, bins, ood=ood, fitted={
        "source": source,
        "ood_reference_images": 0 if ood is None else ood.n_images,
    })
    # How many held-out images of its own world the calibrated model flags.
    z = readout(probs, bins).z_um
    conf = calibration.confidence(probs, z, bins)
    scores = calibration.ood_scores(val_x, z, bins)
    flagged = (conf < FLAG_BELOW_CONFIDENCE) | (scores > 1.0)
    facts = dict(calibration.fitted, flagged=float(flagged.mean()),
                 ood=float((scores > 1.0).mean()) if ood is not None else None)
    return dataclasses.replace(calibration, fitted=facts)


def describe_calibration(fitted: dict[str, Any], temperature: float) -> str:
    """One line for humans: what the calibration changed and how much it flags."""
    nan = float("nan")
    line = (f"temperature {temperature:.3g}; ECE {fitted.get('ece_uncalibrated', nan):.3f} "
            f"uncalibrated -> {fitted.get('ece_in_sample', nan):.3f} on its "
            f"{fitted.get('images', 0)} images of the {fitted.get('source') or 'held-out stacks'}"
            " (in-sample)")
    if fitted.get("ood_reference_images"):
        line += (f"; OOD reference of {fitted['ood_reference_images']} images, "
                 f"{100 * fitted.get('flagged', 0.0):.1f}% of the held-out images flagged")
    else:
        line += "; no OOD check (too few images for its reference)"
    return line
