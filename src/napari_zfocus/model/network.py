"""The z-position CNN of Wei & Roberts (2018) and its options.

Paper architecture: conv 10x10 (32) -> ReLU -> max-pool 5/5 -> conv 10x10 (64) -> ReLU ->
max-pool 5/5 -> FC 1024 -> ReLU -> dropout 0.5 -> FC n_bins (softmax applied by the loss
or the readout). 6.8 M parameters at 250 x 250 px input and 41 bins.

:class:`CompactCNN` (``architecture="compact_cnn"``) is a smaller alternative for CPU
budgets (see :data:`~napari_zfocus.model.config.COMPACT_SETTINGS`).

:class:`FeatureMLP` (``architecture="feature_mlp"``) reads fixed defocus features
(:mod:`.defocus_features`: scale-space statistics and the radial spectrum) with a small
fully connected network; see :data:`~napari_zfocus.model.config.FEATURE_SETTINGS`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.defocus_features import DefocusFeatures


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


class CompactCNN(nn.Module):
    """A compact alternative: strided 3x3 stages, global average pooling, a small head.

    Each entry of ``config.conv_features`` is a stage: a ``kernel_size`` convolution with
    stride ``pool_size`` then a second one at stride 1, each followed by batch-norm (when
    ``config.batchnorm``) and ReLU. Global average pooling makes the readout the same
    everywhere in the field (defocus is a property of the whole image, not of a place in
    it) and keeps the head small whatever the input size. Input (N, 1, H, W), logits out.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        k, pad = config.kernel_size, config.kernel_size // 2
        layers: list[nn.Module] = []
        in_ch = 1
        for feats in config.conv_features:
            for stride, cin in ((config.pool_size, in_ch), (1, feats)):
                layers.append(
                    nn.Conv2d(cin, feats, k, stride=stride, padding=pad,
                              bias=not config.batchnorm)
                )
                if config.batchnorm:
                    layers.append(nn.BatchNorm2d(feats))
                layers.append(nn.ReLU(inplace=True))
            in_ch = feats
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(in_ch, config.fc_features),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.fc_features, config.n_bins),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class FeatureMLP(nn.Module):
    """Defocus features, standardised, read by two hidden layers of ``fc_features``.

    The features (:class:`~.defocus_features.DefocusFeatures`) are fixed; a batch-norm
    without scale and shift standardises them with statistics of the training images
    (stored in the model file), then two GELU layers with dropout ``config.dropout``
    give the logits. The convolution settings of the config are not used.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.features = DefocusFeatures(config.pixel_size_um, config.field_um)
        n, hidden = self.features.n_features, config.fc_features
        self.classifier = nn.Sequential(
            nn.BatchNorm1d(n, affine=False),
            nn.Linear(n, hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, config.n_bins),
        )

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """The fixed features ``(N, F)`` of images ``(N, 1, H, W)`` (no gradients)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of images ``(N, 1, H, W)``, or of features ``(N, F)`` from
        :meth:`extract_features` (training replays them, ``training/feature_replay.py``)."""
        if x.ndim == 2:
            return self.classifier(x)
        return self.classifier(self.features(x))


def build_network(config: ModelConfig) -> nn.Module:
    """Build the network that ``config.architecture`` names."""
    if config.architecture == "paper_cnn":
        return PaperCNN(config)
    if config.architecture == "compact_cnn":
        return CompactCNN(config)
    if config.architecture == "feature_mlp":
        return FeatureMLP(config)
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
