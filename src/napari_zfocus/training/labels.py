"""What the network learns to output: soft z-bin labels, and the loss against them."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from napari_zfocus.model.config import ModelConfig

__all__ = ["soft_cross_entropy", "soft_targets"]


def soft_targets(z_um: torch.Tensor, config: ModelConfig, sigma_um: float) -> torch.Tensor:
    """Target distribution over bins for true defocus ``z_um`` (N,) -> (N, n_bins).

    ``sigma_um == 0`` gives one-hot labels (the paper); otherwise a Gaussian of that width
    over the bin centres, renormalised.
    """
    centres = torch.as_tensor(config.bin_centres_um, dtype=torch.float32)
    z = z_um.to(torch.float32).clamp(config.z_min_um, config.z_max_um)
    if sigma_um <= 0:
        idx = torch.as_tensor(config.z_to_bin(z.numpy()))
        return F.one_hot(idx, config.n_bins).to(torch.float32)
    w = torch.exp(-0.5 * ((centres[None, :] - z[:, None]) / sigma_um) ** 2)
    return w / w.sum(dim=1, keepdim=True)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (N, n_bins) against target distributions."""
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()
