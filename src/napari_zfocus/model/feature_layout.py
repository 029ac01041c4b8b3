"""Which defocus features the feature network reads, from its input setting alone.

Torch-free, so :mod:`.config` can size the network (and refuse an absurd file) before
anything is built, and the command line starts without importing torch. The extractor
that computes these features is :mod:`.defocus_features`.

The features of one image (all invariant to exposure, camera gain and offset, because
the image is z-scored first):

- :data:`IMAGE_QUANTILES` of the image's intensities;
- per scale of a Laplacian pyramid (octaves from the pixel size up, :func:`pyramid_levels`
  of them, plus the low-pass residual): log standard deviation, skewness, log kurtosis and
  :data:`BAND_QUANTILES` of the band;
- per pair of neighbouring scales: their correlation, and the log ratio of the finer
  band's energy where the coarser band is bright to where it is dark;
- the radial power spectrum: mean log power in :data:`LOG_SPECTRUM_RINGS` rings of
  logarithmically spaced spatial frequency, and in narrow linear rings
  (:func:`linear_ring_edges`) from :data:`LINEAR_SPECTRUM_LO` cycles/um up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BAND_QUANTILES",
    "IMAGE_QUANTILES",
    "LOG_SPECTRUM_RINGS",
    "LINEAR_SPECTRUM_LO",
    "FeatureLayout",
    "feature_layout",
    "pyramid_levels",
    "linear_ring_edges",
    "log_ring_edges",
]

#: Intensity quantiles of the whole z-scored image (bright lens foci above focus, dark
#: cores below: the tails carry the sign of the defocus).
IMAGE_QUANTILES = (0.005, 0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98, 0.995)
#: Quantiles of each z-scored pyramid band.
BAND_QUANTILES = (0.01, 0.1, 0.9, 0.99)
#: Statistics per band: log std, skewness, log kurtosis, then the band quantiles.
STATS_PER_BAND = 3 + len(BAND_QUANTILES)
#: Pyramid bands before the low-pass residual, at most (0.24 um/px: up to ~8 um blur).
MAX_PYRAMID_LEVELS = 6
#: The coarsest band must keep this many pixels a side (its statistics need pixels).
MIN_LEVEL_PX = 6
#: Logarithmic rings between ``2 / field`` (or 1/40 cycles/um) and the Nyquist frequency.
LOG_SPECTRUM_RINGS = 24
#: Linear rings start here (cycles/um) and end at 2 cycles/um or Nyquist. Their width is
#: 1.5 frequency steps of the field, fine enough to follow the zeros of the defocus
#: transfer function (at 12 um defocus the first zero moves ~4 % per um).
LINEAR_SPECTRUM_LO = 0.05
LINEAR_SPECTRUM_HI = 2.0
LINEAR_RING_STEPS = 1.5


def pyramid_levels(input_px: int) -> int:
    """Number of band-pass levels for a square input of ``input_px`` pixels (>= 1)."""
    fits = int(math.floor(math.log2(max(input_px, 1) / MIN_LEVEL_PX))) + 1
    return max(1, min(MAX_PYRAMID_LEVELS, fits))


def _nyquist(pixel_size_um: float) -> float:
    return 0.5 / pixel_size_um


def log_ring_edges(pixel_size_um: float, field_um: float) -> np.ndarray:
    """Edges (cycles/um) of the logarithmically spaced spectrum rings."""
    hi = _nyquist(pixel_size_um)
    lo = min(max(1.0 / 40.0, 2.0 / field_um), hi / 2)
    return np.geomspace(lo, hi, LOG_SPECTRUM_RINGS + 1)


def linear_ring_edges(pixel_size_um: float, field_um: float) -> np.ndarray:
    """Edges (cycles/um) of the narrow linear spectrum rings (at least one ring)."""
    hi = min(LINEAR_SPECTRUM_HI, _nyquist(pixel_size_um))
    lo = min(LINEAR_SPECTRUM_LO, hi / 2)
    width = LINEAR_RING_STEPS / field_um
    rings = max(1, int((hi - lo) / width))
    return np.linspace(lo, hi, rings + 1)


@dataclass(frozen=True)
class FeatureLayout:
    """How many features of each kind one input setting gives."""

    levels: int
    log_rings: int
    linear_rings: int

    @property
    def n_features(self) -> int:
        """Length of the feature vector."""
        bands = self.levels + 1  # the band-pass levels and the low-pass residual
        couplings = 2 * self.levels
        return len(IMAGE_QUANTILES) + STATS_PER_BAND * bands + couplings + self.log_rings \
            + self.linear_rings


def feature_layout(pixel_size_um: float, field_um: float) -> FeatureLayout:
    """The :class:`FeatureLayout` of a network input of this pixel size and field."""
    input_px = int(round(field_um / pixel_size_um))
    return FeatureLayout(
        levels=pyramid_levels(input_px),
        log_rings=LOG_SPECTRUM_RINGS,
        linear_rings=len(linear_ring_edges(pixel_size_um, field_um)) - 1,
    )
