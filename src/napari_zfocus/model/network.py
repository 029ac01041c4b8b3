"""The z-position CNN of Wei & Roberts (2018) and its options.

Paper architecture: conv 10x10 (32) -> ReLU -> max-pool 5/5 -> conv 10x10 (64) -> ReLU ->
max-pool 5/5 -> FC 1024 -> ReLU -> dropout 0.5 -> FC n_bins (softmax applied by the loss
or the readout). 6.8 M parameters at 250 x 250 px input and 41 bins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from napari_zfocus.model.config import ModelConfig


class SamePad(nn.Module):
    """Zero 'same' padding for an even kernel (TensorFlow convention: extra pixel after).

    ``nn.Conv2d(padding='same')`` makes a padded copy with a warning for even kernels;
    an explicit pad is equivalent and quiet.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        total = kernel_size - 1
        self.pad = (total // 2, total - total // 2, total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad)


class PaperCNN(nn.Module):
    """Two conv blocks + FC classifier over z-bins. Input (N, 1, H, W), output logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        side = config.input_px
        for feats in config.conv_features:
            layers += [
                SamePad(config.kernel_size),
                nn.Conv2d(in_ch, feats, config.kernel_size, bias=not config.batchnorm),
            ]
            if config.batchnorm:
                layers.append(nn.BatchNorm2d(feats))
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(config.pool_size, config.pool_size)]
            in_ch = feats
            side //= config.pool_size
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_ch * side * side, config.fc_features),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.fc_features, config.n_bins),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_network(config: ModelConfig) -> nn.Module:
    """Build the network that ``config.architecture`` names."""
    if config.architecture == "paper_cnn":
        return PaperCNN(config)
    raise ValueError(f"unknown architecture {config.architecture!r}")  # validated by config


def init_paper_weights(net: nn.Module) -> None:
    """The paper's initialisation: truncated normal (sd 0.1, cut at 2 sd), biases 0.1."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=0.1, a=-0.2, b=0.2)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.1)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
