"""Model configuration in physical units.

A model sees a square field of ``field_um`` micrometres sampled at ``pixel_size_um``; any
input image of known pixel size is resampled to that before inference. Its output is a
softmax over z-bins of ``bin_um`` spanning ``z_min_um .. z_max_um`` (bin centres).
Defaults are the paper's best setting: 60 um field at 0.24 um/px (a 1000 px crop of
60 nm pixels downsampled 4x) and 1 um bins over -20..+20 um (41 classes).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_zfocus.bounds import CONDENSER_NA
from napari_zfocus.errors import ZFocusError
from napari_zfocus.validation import check_choice, check_number

ARCHITECTURES = ("paper_cnn", "compact_cnn", "feature_mlp")

#: The compact network (``architecture="compact_cnn"``, :class:`~.network.CompactCNN`):
#: per stage a strided 3x3 convolution and a 3x3 convolution with batch-norm, global average
#: pooling, a small head. At 0.6 um/px (a 100 px input over the same 60 um field) one
#: training step costs about what the paper CNN's costs at 1.2 um/px, and it sees 4x the
#: pixels (README, Benchmarks).
COMPACT_SETTINGS: dict = {
    "architecture": "compact_cnn", "pixel_size_um": 0.6, "conv_features": (24, 48, 96, 128),
    "kernel_size": 3, "pool_size": 2, "fc_features": 128, "dropout": 0.2, "batchnorm": True,
}

#: The feature network (``architecture="feature_mlp"``, :class:`~.network.FeatureMLP`):
#: fixed defocus features (scale-space statistics and the radial power spectrum,
#: :mod:`.feature_layout`) of a 60 um field at 0.48 um/px, read by two hidden layers of
#: 256 with dropout 0.5. The convolution settings are unused (set to their minimum).
#: At 0.24 um/px (the feature base model's setting) it is ~1.5 points more accurate on our
#: simulator and as accurate on the independent world, but its features cost 1.5x the
#: whole live frame: 0.48 um/px runs at ~0.95x the compact CNN's frame rate.
FEATURE_SETTINGS: dict = {
    "architecture": "feature_mlp", "pixel_size_um": 0.48, "conv_features": (1,),
    "kernel_size": 1, "pool_size": 1, "fc_features": 256, "dropout": 0.5, "batchnorm": True,
}

#: The paper CNN on a CPU budget: a 60 um field at 1.2 um/px (20x downsampling of 60 nm
#: pixels, a 50 px input) with batch-norm. On a 2-core CPU a 10-minute budget then makes
#: ~6800 steps instead of ~1300 at 0.48 um/px, and the extra steps outweigh the lost
#: detail: 88.5 % of test images within +/-1 um against 84.3 % at 0.96, 81.3 % at 0.72 and
#: 76.3 % at 0.48 um/px (README, Benchmarks). The shipped demo and base models use it.
PAPER_CPU_SETTINGS: dict = {"pixel_size_um": 1.2, "batchnorm": True}

#: Each architecture's CPU-budget setting (:meth:`ModelConfig.for_architecture`).
ARCHITECTURE_SETTINGS: dict[str, dict] = {
    "paper_cnn": PAPER_CPU_SETTINGS, "compact_cnn": COMPACT_SETTINGS,
    "feature_mlp": FEATURE_SETTINGS,
}

#: Settings a network does not read, per architecture (the training form greys them out):
#: the feature network has no convolutions and always standardises its features.
IGNORED_SETTINGS: dict[str, frozenset[str]] = {
    "paper_cnn": frozenset(), "compact_cnn": frozenset(),
    "feature_mlp": frozenset({"batchnorm", "conv_features", "kernel_size", "pool_size"}),
}

#: What ``zfocus train`` and the training widget start from: the feature network. Against
#: the compact CNN (the default before it) at 10 minutes of 2 CPU cores, on 80 stacks each
#: (README, Benchmarks): the independent waveorder world with one microscope's condenser
#: 97.3 % within +/-1 um against 96.6 %, as drawn (aperture per stack) a tie (59.2 / 63.2 %
#: on two test sets against 63.2 / 60.1 %), our simulator 95.8 % against 92.6-94.4 %, 9 of 11
#: held-out worlds better; its confidence meets the calibration targets as trained, and it
#: runs at ~0.95x the compact CNN's frame rate. ``ModelConfig()`` stays the paper's setting.
RECOMMENDED_SETTINGS: dict = FEATURE_SETTINGS
NORMALISATIONS = ("per_image_zscore",)

# ---- Bounds of every setting, in one place. A model file's configuration is plain JSON
# that anyone can edit, and the network is built from it before a single weight is read:
# these bounds are wide enough for any light-microscope model, and narrow enough that no
# file (or flag) can make us allocate absurd memory or produce a meaningless readout.
#: Pixel size the network sees, um/px: 1 nm (beyond any optics) .. 100 um (beyond any
#: objective that still shows cells).
PIXEL_SIZE_UM_RANGE = (1e-3, 100.0)
#: Side of the field the network sees, um (a 10 mm field is a whole slide).
FIELD_UM_RANGE = (1e-3, 10_000.0)
#: Side of the network input in pixels: 4096 px is 16x the paper's 250 px input.
MAX_INPUT_PX = 4096
#: z-bin width, um: 1 nm .. 100 um.
BIN_UM_RANGE = (1e-3, 100.0)
#: Largest |z| of a bin centre, um: 1 mm of defocus is far past any objective's range.
MAX_ABS_Z_UM = 1000.0
#: Softmax classes: at least 2 (one bin cannot tell z), at most 2001 (1 um bins over
#: +/-1 mm; the paper has 41).
N_BINS_RANGE = (2, 2001)
#: Convolution blocks (the paper has 2) and features per block (the paper: 32, 64).
MAX_CONV_LAYERS = 8
MAX_CONV_FEATURES = 2048
#: Square kernel side (the paper: 10); also at most the input side.
MAX_KERNEL_SIZE = 64
#: Max-pool window and stride (the paper: 5); 1 means no pooling.
MAX_POOL_SIZE = 32
#: Width of the hidden fully connected layer (the paper: 1024).
MAX_FC_FEATURES = 16384
#: Trainable parameters: 250 M float32 weights are 1 GB (the paper's network has 6.8 M).
MAX_PARAMETERS = 250_000_000
#: Convolution outputs per image (floats): 2**28 are 1 GiB (the paper: 2.2 M).
MAX_ACTIVATIONS = 2**28


def _number(value: Any, name: str, lo: float, hi: float, *, hi_open: bool = False) -> float:
    """A real number (not a string or a bool) in range; the message names the field."""
    return float(check_number(value, name, lo=lo, hi=hi, hi_open=hi_open, strict=True))


def _integer(value: Any, name: str, lo: int, hi: int) -> int:
    """An integer (not a string, a bool or 2.5) in range; the message names the field."""
    return int(check_number(value, name, lo=lo, hi=hi, integer=True, strict=True))


def _network_size(config: ModelConfig) -> tuple[int, int]:
    """(trainable parameters, convolution outputs per image) of the network, computed
    from the settings alone, so an absurd file is refused before anything is allocated."""
    if config.architecture == "compact_cnn":
        return _compact_size(config)
    if config.architecture == "feature_mlp":
        return _feature_size(config)
    side, in_ch, params, activations = config.input_px, 1, 0, 0
    k = config.kernel_size
    for feats in config.conv_features:
        # 'same' convolution (bias only without batch-norm, which has its own 2 per feature)
        params += k * k * in_ch * feats + (2 * feats if config.batchnorm else feats)
        activations += side * side * feats
        in_ch, side = feats, side // config.pool_size
    flat = in_ch * side * side
    params += flat * config.fc_features + config.fc_features
    params += config.fc_features * config.n_bins + config.n_bins
    return params, activations


def _compact_size(config: ModelConfig) -> tuple[int, int]:
    """:func:`_network_size` of the compact CNN (two convolutions per stage, GAP head)."""
    side, in_ch, params, activations = config.input_px, 1, 0, 0
    k = config.kernel_size
    norm = 2 if config.batchnorm else 1  # batch-norm's two parameters, or a bias
    for feats in config.conv_features:
        side = -(-side // config.pool_size)  # strided 'same' convolution: ceil
        params += k * k * in_ch * feats + k * k * feats * feats + 2 * norm * feats
        activations += 2 * side * side * feats
        in_ch = feats
    params += in_ch * config.fc_features + config.fc_features
    params += config.fc_features * config.n_bins + config.n_bins
    return params, activations


def _feature_size(config: ModelConfig) -> tuple[int, int]:
    """:func:`_network_size` of the feature network (a few maps of the input's size)."""
    from napari_zfocus.model.feature_layout import feature_layout

    n = feature_layout(config.pixel_size_um, config.field_um).n_features
    hidden = config.fc_features
    params = n * hidden + hidden + hidden * hidden + hidden + hidden * config.n_bins \
        + config.n_bins
    return params, 4 * config.input_px * config.input_px


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network and feed it correctly.

    Stored as JSON metadata inside every model file. Every setting is checked on
    construction (:meth:`validate`); the bounds are the ``*_RANGE`` / ``MAX_*`` constants
    of this module.
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
    #: ``None``: the network reads true distances (one microscope setting). A number: it
    #: reads them as at this condenser aperture, each training stack's scaled by its own
    #: aperture (:mod:`.aperture`); a :class:`~.distance_scale.DistanceScale` then gives
    #: a microscope's.
    reference_condenser_na: float | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()
        # Normalise the types once checked (JSON may give 60 for 60.0, a list for a tuple).
        self.conv_features = tuple(int(f) for f in self.conv_features)
        for name in ("pixel_size_um", "field_um", "bin_um", "z_min_um", "z_max_um", "dropout"):
            setattr(self, name, float(getattr(self, name)))
        for name in ("kernel_size", "pool_size", "fc_features"):
            setattr(self, name, int(getattr(self, name)))
        self.batchnorm = bool(self.batchnorm)
        if self.reference_condenser_na is not None:
            self.reference_condenser_na = float(self.reference_condenser_na)

    def validate(self) -> None:
        """Raise :class:`ZFocusError` naming the first impossible or out-of-range setting.

        Types are strict (a string, a list or a bool where a number belongs is refused),
        so a hand-edited model file cannot slip a wrong value past the checks.
        """
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        check_choice(self.normalisation, "normalisation", NORMALISATIONS)
        _number(self.pixel_size_um, "pixel_size_um", *PIXEL_SIZE_UM_RANGE)
        _number(self.field_um, "field_um", *FIELD_UM_RANGE)
        _number(self.bin_um, "bin_um", *BIN_UM_RANGE)
        z_min = _number(self.z_min_um, "z_min_um", -MAX_ABS_Z_UM, MAX_ABS_Z_UM)
        z_max = _number(self.z_max_um, "z_max_um", -MAX_ABS_Z_UM, MAX_ABS_Z_UM)
        if not z_max > z_min:
            raise ZFocusError(
                f"z range is empty: z_min_um {z_min:g} must be < z_max_um {z_max:g}"
            )
        try:
            _number(self.dropout, "dropout", 0.0, 1.0, hi_open=True)
        except ZFocusError:  # the interval notation users (and scripts) already know
            raise ZFocusError(f"dropout must be in [0, 1), got {self.dropout!r}") from None
        if not isinstance(self.batchnorm, (bool, np.bool_)):
            raise ZFocusError(f"batchnorm must be true or false, got {self.batchnorm!r}")
        if self.reference_condenser_na is not None:
            _number(self.reference_condenser_na, "reference_condenser_na", *CONDENSER_NA)
        if not isinstance(self.extra, dict):
            raise ZFocusError(f"extra must be a dict, got {type(self.extra).__name__}")
        self._validate_network(z_min, z_max)

    def _validate_network(self, z_min: float, z_max: float) -> None:
        """The architecture's numbers, and the size of the network they build."""
        features = self.conv_features
        if not isinstance(features, (tuple, list)) or not 1 <= len(features) <= MAX_CONV_LAYERS:
            raise ZFocusError(
                f"conv_features must be a list of 1 to {MAX_CONV_LAYERS} integers, got {features!r}"
            )
        for i, feats in enumerate(features):
            _integer(feats, f"conv_features[{i}]", 1, MAX_CONV_FEATURES)
        _integer(self.pool_size, "pool_size", 1, MAX_POOL_SIZE)
        _integer(self.fc_features, "fc_features", 1, MAX_FC_FEATURES)
        # The ranges above keep these two quotients far from overflow.
        if not N_BINS_RANGE[0] <= self.n_bins <= N_BINS_RANGE[1]:
            raise ZFocusError(
                f"bin_um {self.bin_um:g} over z {z_min:g}..{z_max:g} um gives {self.n_bins} bins; "
                f"allowed {N_BINS_RANGE[0]}..{N_BINS_RANGE[1]}"
            )
        if not 1 <= self.input_px <= MAX_INPUT_PX:
            raise ZFocusError(
                f"field_um {self.field_um:g} at pixel_size_um {self.pixel_size_um:g} gives a "
                f"{self.input_px} px input; allowed 1..{MAX_INPUT_PX} px"
            )
        needed = int(self.pool_size) ** len(features)
        if self.input_px < needed:
            raise ZFocusError(
                f"field_um {self.field_um:g} at pixel_size_um {self.pixel_size_um:g} gives "
                f"{self.input_px} px, too small for the network (pool_size {self.pool_size} over "
                f"{len(features)} conv layers needs >= {needed} px)"
            )
        _integer(self.kernel_size, "kernel_size", 1, min(MAX_KERNEL_SIZE, self.input_px))
        params, activations = _network_size(self)
        if params > MAX_PARAMETERS:
            raise ZFocusError(
                f"the network would have {params:,} parameters (allowed <= {MAX_PARAMETERS:,}); "
                "use a smaller input (field_um / pixel_size_um), fc_features or conv_features"
            )
        if activations > MAX_ACTIVATIONS:
            raise ZFocusError(
                f"the network would compute {activations:,} values per image (allowed <= "
                f"{MAX_ACTIVATIONS:,}); use a smaller input or conv_features"
            )

    def check_bin_grid(self) -> None:
        """Refuse a z range that is not a whole number of bins (for NEW models only).

        ``bin_um`` 3 over ``z_min_um .. z_max_um`` -5..5 gives bin centres -5, -2, 1, 4:
        none at focus, +5 past the last centre. Not part of :meth:`validate`, which also
        runs on loading: model files trained so (the paper study of 3 um bins over
        +/-20 um, centres -20..19) must keep loading.

        Raises
        ------
        ZFocusError
            Naming ``bin_um``, ``z_min_um`` and ``z_max_um`` and a range that fits.
        """
        steps = (self.z_max_um - self.z_min_um) / self.bin_um
        if abs(steps - round(steps)) <= 1e-6:
            return
        half = math.ceil(max(abs(self.z_min_um), abs(self.z_max_um)) / self.bin_um - 1e-6)
        fit = half * self.bin_um
        raise ZFocusError(
            f"bin_um {self.bin_um:g} does not divide the z range z_min_um {self.z_min_um:g} .. "
            f"z_max_um {self.z_max_um:g} ({steps:.3g} bin widths): the bins would miss focus "
            f"(z = 0) or an end of the range; use a range of whole bins, e.g. "
            f"{-fit:g} {fit:g}"
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

    @classmethod
    def paper_cpu(cls, **overrides) -> ModelConfig:
        """:data:`PAPER_CPU_SETTINGS` over the paper defaults, then ``overrides``."""
        return cls.for_architecture("paper_cnn", **overrides)

    @classmethod
    def for_architecture(cls, architecture: str, **overrides) -> ModelConfig:
        """The CPU-budget setting of a network (:data:`ARCHITECTURE_SETTINGS`):
        ``"compact_cnn"`` (:meth:`compact`), ``"paper_cnn"`` (:meth:`paper_cpu`) or
        ``"feature_mlp"``, then ``overrides``."""
        check_choice(architecture, "architecture", ARCHITECTURES)
        return cls(**{**ARCHITECTURE_SETTINGS[architecture], **overrides})

    @classmethod
    def compact(cls, **overrides) -> ModelConfig:
        """:data:`COMPACT_SETTINGS` over the paper defaults, then ``overrides``."""
        return cls.for_architecture("compact_cnn", **overrides)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        d = dataclasses.asdict(self)
        d["conv_features"] = list(self.conv_features)
        if d["reference_condenser_na"] is None:
            # Left out, not null: the files of models that read true distances stay
            # readable by versions that predate the setting.
            del d["reference_condenser_na"]
        return d

    @classmethod
    def from_dict(cls, d: Any) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (tampered or newer file).

        Missing keys take their defaults (files written before a setting existed).

        Raises
        ------
        ZFocusError
            Not a dict, unknown keys, or any setting :meth:`validate` refuses.
        """
        if not isinstance(d, dict):
            raise ZFocusError(f"model settings must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(d) - names)
        if unknown:
            raise ZFocusError(f"unknown model settings {unknown} (file from a newer version?)")
        return cls(**d)
