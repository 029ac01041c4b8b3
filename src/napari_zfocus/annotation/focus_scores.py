"""Classic image-based focus (sharpness) scores, vectorised over a stack.

Each score takes one image ``(Y, X)`` or a stack ``(Z, Y, X)`` and returns a float or a
``(Z,)`` array. Scores are means over pixels (not sums), so they do not depend on the
image size. Stacks are processed a few slices at a time to bound memory on full-frame
acquisitions.

References: Groen, Young & Ligthart, Cytometry 6:81 (1985); Pertuz, Puig & Garcia,
Pattern Recognition 46:1415 (2013).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

FocusScore = Callable[[np.ndarray], "float | np.ndarray"]

#: Slices processed together: 8 full camera frames in float32 is ~100 MB.
_CHUNK = 8

_LAPLACE = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=np.float32)
_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=np.float32)


def _per_slice(func: Callable[[np.ndarray], np.ndarray]) -> FocusScore:
    """Lift ``func`` (float32 ``(n, Y, X)`` -> ``(n,)``) to images and stacks."""

    def score(images: np.ndarray) -> float | np.ndarray:
        array = np.asarray(images)
        if array.ndim not in (2, 3):
            raise ValueError(f"expected an image (Y, X) or a stack (Z, Y, X), got {array.shape}")
        if min(array.shape[-2:]) < 3:
            raise ValueError(f"images must be at least 3 x 3 pixels, got {array.shape[-2:]}")
        stack = array[None] if array.ndim == 2 else array
        out = (
            np.concatenate(
                [
                    func(stack[i : i + _CHUNK].astype(np.float32, copy=False))
                    for i in range(0, len(stack), _CHUNK)
                ]
            )
            if len(stack)
            else np.zeros(0)
        )
        return float(out[0]) if array.ndim == 2 else out

    score.__name__ = func.__name__.lstrip("_")
    score.__doc__ = func.__doc__
    return score


def _mean(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=(-2, -1), dtype=np.float64)


@_per_slice
def _variance_of_laplacian(stack: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian (Pech-Pacheco et al. 2000)."""
    lap = ndimage.correlate(stack, _LAPLACE[None], mode="reflect")
    return lap.var(axis=(-2, -1), dtype=np.float64)


@_per_slice
def _brenner(stack: np.ndarray) -> np.ndarray:
    """Brenner gradient: mean squared difference of pixels two apart, along x and y."""
    dx = stack[:, :, 2:] - stack[:, :, :-2]
    dy = stack[:, 2:, :] - stack[:, :-2, :]
    return 0.5 * (_mean(dx * dx) + _mean(dy * dy))


@_per_slice
def _tenengrad(stack: np.ndarray) -> np.ndarray:
    """Tenengrad: mean squared Sobel gradient magnitude."""
    # Explicit 2-D kernels: ndimage.sobel would also smooth along z, mixing slices.
    gx = ndimage.correlate(stack, _SOBEL_X[None], mode="reflect")
    gy = ndimage.correlate(stack, _SOBEL_X.T[None], mode="reflect")
    return _mean(gx * gx + gy * gy)


@_per_slice
def _normalized_variance(stack: np.ndarray) -> np.ndarray:
    """Normalised variance: intensity variance divided by the mean (Groen et al. 1985).

    Dividing by the mean makes it insensitive to illumination changes between slices.
    """
    mean = _mean(stack)
    var = stack.var(axis=(-2, -1), dtype=np.float64)
    return var / np.where(mean > 0, mean, np.inf)


variance_of_laplacian: FocusScore = _variance_of_laplacian
brenner: FocusScore = _brenner
tenengrad: FocusScore = _tenengrad
normalized_variance: FocusScore = _normalized_variance

#: Score name -> function, for command lines, widgets and evaluation baselines.
FOCUS_SCORES: dict[str, FocusScore] = {
    "variance_of_laplacian": variance_of_laplacian,
    "brenner": brenner,
    "tenengrad": tenengrad,
    "normalized_variance": normalized_variance,
}
