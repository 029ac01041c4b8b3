"""Model configuration in physical units.

A model sees a square field of ``field_um`` micrometres sampled at ``pixel_size_um``; any
input image of known pixel size is resampled to that before inference. Its output is a
softmax over z-bins of ``bin_um`` spanning ``z_min_um .. z_max_um`` (bin centres).
Defaults are the paper's best setting: 60 um field at 0.24 um/px (a 1000 px crop of
60 nm pixels downsampled 4x) and 1 um bins over -20..+20 um (41 classes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from napari_zfocus.errors import ZFocusError

ARCHITECTURES = ("paper_cnn",)

#: What ``zfocus train`` and the training widget start from: the paper CNN on a 60 um
#: field, but at 1.2 um/px (20x downsampling of 60 nm pixels, a 50 px input) with
#: batch-norm. On a 2-core CPU a 10-minute budget then makes ~6800 steps instead of ~1300
#: at 0.48 um/px, and the extra steps outweigh the lost detail: 88.5 % of test images
#: within +/-1 um against 84.3 % at 0.96, 81.3 % at 0.72 and 76.3 % at 0.48 um/px
#: (README, Benchmarks). ``ModelConfig()`` itself stays the paper's setting.
RECOMMENDED_SETTINGS: dict = {"pixel_size_um": 1.2, "batchnorm": True}
NORMALISATIONS = ("per_image_zscore",)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network and feed it correctly.

    Stored as JSON metadata inside every model file.
    """

    architecture: str = "paper_cnn"
    pixel_size_um: float = 0.24
    field_um: float = 60.0
    bin_um: float = 1.0
    z_min_um: float = -20.0
    z_max_um: float = 20.0
    normalisation: str = "per_image_zscore"
    # Paper CNN hyper-parameters (two conv blocks, FC, dropout).
    conv_features: tuple[int, ...] = (32, 64)
    kernel_size: int = 10
    pool_size: int = 5
    fc_features: int = 1024
    dropout: float = 0.5
    batchnorm: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.conv_features = tuple(int(f) for f in self.conv_features)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ZFocusError` on an impossible setting."""
        if self.architecture not in ARCHITECTURES:
            raise ZFocusError(f"unknown architecture {self.architecture!r}; use one of {ARCHITECTURES}")
        if self.normalisation not in NORMALISATIONS:
            raise ZFocusError(f"unknown normalisation {self.normalisation!r}")
        if not (self.pixel_size_um > 0 and np.isfinite(self.pixel_size_um)):
            raise ZFocusError(f"pixel size must be a positive number of um, got {self.pixel_size_um}")
        if not (self.field_um > 0 and np.isfinite(self.field_um)):
            raise ZFocusError(f"field must be a positive number of um, got {self.field_um}")
        if not 0.0 <= self.dropout < 1.0:
            raise ZFocusError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.bin_um > 0:
            raise ZFocusError(f"bin size must be positive, got {self.bin_um} um")
        if not self.z_max_um > self.z_min_um:
            raise ZFocusError(
                f"z range is empty: z_min {self.z_min_um} um >= z_max {self.z_max_um} um"
            )
        if self.input_px < self.pool_size**len(self.conv_features):
            raise ZFocusError(
                f"field {self.field_um} um at {self.pixel_size_um} um/px gives {self.input_px} px, "
                f"too small for the network (needs >= {self.pool_size ** len(self.conv_features)} px)"
            )

    @property
    def input_px(self) -> int:
        """Side of the square network input in pixels."""
        return int(round(self.field_um / self.pixel_size_um))

    @property
    def n_bins(self) -> int:
        """Number of z-bins (softmax outputs)."""
        return int(round((self.z_max_um - self.z_min_um) / self.bin_um)) + 1

    @property
    def bin_centres_um(self) -> np.ndarray:
        """Centre of every z-bin in um, ascending."""
        return self.z_min_um + self.bin_um * np.arange(self.n_bins, dtype=np.float64)

    def z_to_bin(self, z_um: np.ndarray | float) -> np.ndarray:
        """Index of the bin whose centre is nearest to ``z_um`` (clipped to the range)."""
        idx = np.rint((np.asarray(z_um, dtype=np.float64) - self.z_min_um) / self.bin_um)
        return np.clip(idx, 0, self.n_bins - 1).astype(np.int64)

    @classmethod
    def recommended(cls, **overrides) -> ModelConfig:
        """:data:`RECOMMENDED_SETTINGS` over the paper defaults, then ``overrides``."""
        return cls(**{**RECOMMENDED_SETTINGS, **overrides})

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        d = dataclasses.asdict(self)
        d["conv_features"] = list(self.conv_features)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (tampered or newer file)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ZFocusError(f"unknown model settings {unknown} (file from a newer version?)")
        return cls(**d)
