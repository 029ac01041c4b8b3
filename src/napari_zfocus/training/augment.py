"""Photometric augmentation: what another microscope, camera or sample does to an image.

The geometric augmentation (flips, 90-degree rotations) in
:meth:`~napari_zfocus.training.dataset_cache.TrainingData.sample` keeps the model from
learning orientation. These random changes keep it from learning one microscope's look,
which is what a model trained on one simulator and shown another world got wrong (issue
#12): the defocus signature (the odd bright/dark flip of phase contrast, the widening of
halos) survives all of them, the details of one instrument do not.

Per crop (already z-scored, so any affine change of intensity is void anyway):

* a gamma-like curve ``x + a x^2`` (``|a| <= 0.15``): camera response, absorption;
* with probability 1/2, a Gaussian blur of 0.3-1.2 px: lower NA, a slightly different
  pixel size, vibration;
* with probability 1/2, white noise of 0.05-0.4 standard deviations: dim light;
* a linear intensity ramp of up to 0.3 across the crop: vignetting, uneven condenser.

The caller z-scores the result again, exactly as inference does.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Largest quadratic coefficient of the gamma-like curve (on z-scored values).
MAX_CURVE = 0.15
#: Blur sigma range (px at the model's pixel size) and the probability of a blur.
BLUR_PX = (0.3, 1.2)
BLUR_PROBABILITY = 0.5
#: Noise standard deviation range (in units of the crop's standard deviation).
NOISE_STD = (0.05, 0.4)
NOISE_PROBABILITY = 0.5
#: Largest end-to-end amplitude of the linear ramp (crop standard deviations).
MAX_RAMP = 0.3


def photometric(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply the module's random changes to float32 ``(N, H, W)`` crops in place.

    Returns the same array. Draws a fixed number of random values per crop (so batches
    stay reproducible from the step's generator whatever was applied).
    """
    n, height, width = crops.shape
    curve = rng.uniform(-MAX_CURVE, MAX_CURVE, size=(n,))
    blur = np.where(rng.random(n) < BLUR_PROBABILITY, rng.uniform(*BLUR_PX, n), 0.0)
    noise = np.where(rng.random(n) < NOISE_PROBABILITY, rng.uniform(*NOISE_STD, n), 0.0)
    ramp = rng.uniform(-MAX_RAMP, MAX_RAMP, (n, 2))
    yy = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    for i in range(n):
        crop = crops[i]
        crop += np.float32(curve[i]) * crop * crop
        if blur[i] > 0:
            crop[...] = ndimage.gaussian_filter(crop, float(blur[i]))
        if noise[i] > 0:
            crop += rng.standard_normal(crop.shape, dtype=np.float32) * np.float32(noise[i])
        crop += np.float32(ramp[i, 0]) * yy + np.float32(ramp[i, 1]) * xx
    return crops
