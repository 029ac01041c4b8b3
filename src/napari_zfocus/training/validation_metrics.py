"""Validation during training: predict held-out images, score them as users will see them."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.readout import readout

__all__ = ["predict_logits", "regression_metrics", "validation_metrics"]


def regression_metrics(z_true: np.ndarray, z_pred: np.ndarray) -> dict[str, float]:
    """Error statistics of predicted defocus (um).

    Keys: ``median_abs_error_um``, ``mean_abs_error_um``, ``rmse_um``, ``within_1um``
    (fraction of images with ``|error| <= 1 um``), ``n_images``.
    """
    err = np.abs(np.asarray(z_pred, dtype=np.float64) - np.asarray(z_true, dtype=np.float64))
    if err.size == 0:
        return {}
    return {
        "median_abs_error_um": float(np.median(err)),
        "mean_abs_error_um": float(err.mean()),
        "rmse_um": float(np.sqrt((err**2).mean())),
        "within_1um": float((err <= 1.0 + 1e-9).mean()),
        "n_images": float(err.size),
    }


@torch.no_grad()
def predict_logits(net: nn.Module, x: torch.Tensor, device: torch.device,
                   chunk: int = 64, channels_last: bool = True) -> torch.Tensor:
    """Logits (float32, CPU) for prepared inputs ``x`` (N, 1, n, n), in chunks."""
    was_training = net.training
    net.eval()
    out = []
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk].to(device=device, dtype=torch.float32)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        out.append(net(xb).float().cpu())
    net.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def validation_metrics(
    logits: torch.Tensor, z_true: np.ndarray, config: ModelConfig
) -> dict[str, float]:
    """Metrics of the Predictor's readout, plus the paper's argmax readout.

    The main keys use :func:`napari_zfocus.model.readout.readout`'s local expected value
    (what ``Prediction.z_um`` reports, so validation measures what users get); the
    argmax (centre of the most probable bin) is reported as
    ``argmax_median_abs_error_um`` / ``argmax_within_1um``.
    """
    if len(logits) == 0:
        return {}
    p = torch.softmax(logits.double(), dim=1).numpy()
    r = readout(p, config.bin_centres_um)
    metrics = regression_metrics(z_true, r.z_um)
    arg = regression_metrics(z_true, r.z_argmax_um)
    metrics["argmax_median_abs_error_um"] = arg["median_abs_error_um"]
    metrics["argmax_within_1um"] = arg["within_1um"]
    return metrics
