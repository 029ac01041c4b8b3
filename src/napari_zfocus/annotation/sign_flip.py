"""The in-focus slice from the sign flip of bright-field phase contrast.

Physics: a nearly transparent cell is a weak lens. Defocused one way it looks bright
(light converges behind it), the other way dark, and in focus it almost vanishes: its
phase image is ODD in defocus (transport of intensity: dI/dz is proportional to the
Laplacian of the phase). Absorption, by contrast, blurs the same way on both sides (EVEN).
So around the true focus ``f`` the high-passed slices ``f + d`` and ``f - d`` are
anti-correlated wherever phase dominates, and only there: slices on the same side of focus
are positively correlated.

Method (``"sign-flip"``):

1. every slice: slow background removed (as for the contrast profile), 1 px denoising,
   block-averaged to at most :data:`MAX_SIDE_PX` px;
2. the field is cut into ``TILES x TILES`` tiles; in each, the correlation of every pair of
   slices, and the *mirror curve* ``m(f)`` = mean correlation of slices ``f + d`` and
   ``f - d`` for ``d`` up to :data:`MIRROR_REACH_UM` (needs two pairs);
3. each tile votes with the strength of its own sign flip (``-min m``, 0 when its curve
   never goes negative). Tiles of PDMS pillars, empty medium or debris show no flip and
   get no say, which is what keeps a sparse field on its cells instead of on the much
   brighter pillar edges; the focus is the minimum of the weighted mean curve.

Without a sign flip anywhere (strongly absorbing samples, or an image that is not
bright-field), the sharpest valley of the whole field's mirror curve is taken
(``"mirror-valley"``) if it has one, else the caller falls back to the contrast dip.

Measured on simulated worlds in ``benchmarks/bench_suggest.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Largest defocus (um) either side of a candidate focus that its mirror pairs reach: the
#: phase contrast's sign holds for ~3-5 um at NA 1.3 before far-defocus fringes begin.
MIRROR_REACH_UM = 4.0
#: Tiles per side: 4 x 4 tiles of a 320 px field are ~19 um, a few cells each.
TILES = 4
#: Slices are block-averaged to at most this many pixels per side (memory and speed).
MAX_SIDE_PX = 256
#: Summed tile flip strength below which the field is taken to show no sign flip.
MIN_FLIP_WEIGHT = 0.3
#: Second difference (at +/-2 slices) a mirror-curve valley needs to count without a flip.
MIN_VALLEY_CURVATURE = 0.1


@dataclass(frozen=True)
class SignFlipFocus:
    """Where the phase contrast flips sign.

    Attributes
    ----------
    focus_index
        0-based in-focus slice.
    confidence
        0..1: the share of the flip evidence (tile weights) whose own tile minimum lies
        within one slice of ``focus_index``, times the depth of the flip (saturating at a
        correlation of -0.5). Low: several layers or tiles disagree, check by eye.
    runner_up
        The best other minimum of the curve at least 2 slices away, or None.
    curve
        The weighted mirror curve (NaN where fewer than two mirror pairs fit).
    method
        ``"sign-flip"`` or ``"mirror-valley"``.
    """

    focus_index: int
    confidence: float
    runner_up: int | None
    curve: np.ndarray
    method: str


def mirror_slice(detail: np.ndarray, background_mean: float) -> np.ndarray:
    """One slice prepared for the mirror correlations (step 1 of the module's method).

    ``detail`` is the slice minus its slow background, ``background_mean`` that
    background's mean (to make slices of different brightness comparable).
    """
    scaled = detail / background_mean if background_mean > 0 else detail
    smooth = ndimage.gaussian_filter(scaled.astype(np.float32, copy=False), 1.0)
    factor = max(1, int(np.ceil(max(smooth.shape) / MAX_SIDE_PX)))
    if factor == 1:
        return smooth
    rows, cols = (s // factor * factor for s in smooth.shape)
    blocks = smooth[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return blocks.mean(axis=(1, 3))


def mirror_curve(correlation: np.ndarray, reach: int) -> np.ndarray:
    """Mean correlation of slices ``f + d`` and ``f - d``, d = 1..reach, per ``f``.

    ``correlation`` is ``(..., Z, Z)``; the result is ``(..., Z)``, NaN where fewer than
    ``min(2, reach)`` pairs fit inside the stack (one pair alone is too noisy to trust).
    """
    n = correlation.shape[-1]
    curve = np.full(correlation.shape[:-1], np.nan)
    min_pairs = min(2, reach)
    for f in range(n):
        ds = [d for d in range(1, reach + 1) if f - d >= 0 and f + d < n]
        if len(ds) >= min_pairs:
            curve[..., f] = np.mean([correlation[..., f + d, f - d] for d in ds], axis=0)
    return curve


def tile_correlations(slices: np.ndarray, tiles: int = TILES) -> np.ndarray:
    """``(tiles * tiles + 1, Z, Z)`` slice correlations per tile, the whole field last."""
    n, height, width = slices.shape
    th, tw = max(1, height // tiles), max(1, width // tiles)
    views = [
        slices[:, i * th : (i + 1) * th, j * tw : (j + 1) * tw]
        for i in range(tiles)
        for j in range(tiles)
    ]
    out = []
    for view in [*views, slices]:
        flat = view.reshape(n, -1).astype(np.float64)
        flat -= flat.mean(axis=1, keepdims=True)
        gram = flat @ flat.T
        norm = np.sqrt(np.clip(np.diag(gram), 1e-30, None))
        out.append(gram / np.outer(norm, norm))
    return np.asarray(out)


def sign_flip_focus(slices: np.ndarray, z_step_um: float) -> SignFlipFocus | None:
    """Find the focus of prepared slices (:func:`mirror_slice`), or None when unclear.

    None means neither a sign flip nor a sharp mirror valley: the caller should use the
    contrast dip.
    """
    reach = max(1, round(MIRROR_REACH_UM / z_step_um))
    curves = mirror_curve(tile_correlations(slices), reach)
    tile_curves, whole = curves[:-1], curves[-1]
    if np.all(np.isnan(whole)):
        return None
    valid = ~np.isnan(whole)
    minima = np.nanmin(np.where(valid, tile_curves, np.inf), axis=1)
    weights = np.clip(-minima, 0.0, None)
    if weights.sum() >= MIN_FLIP_WEIGHT:
        combined = np.where(valid, (tile_curves * weights[:, None]).sum(0) / weights.sum(), np.nan)
        index = int(np.nanargmin(combined))
        own = np.argmin(np.where(valid, tile_curves, np.inf), axis=1)
        agreement = float(weights[np.abs(own - index) <= 1].sum() / weights.sum())
        depth = float(np.clip(-combined[index] / 0.5, 0.0, 1.0))
        return SignFlipFocus(index, agreement * depth, _runner_up(combined, index),
                             combined, "sign-flip")
    index_or_none = _sharpest_valley(whole)
    if index_or_none is None:
        return None
    # No flip: the evidence is weaker by nature; the confidence says so.
    curvature = _curvature(whole, index_or_none)
    confidence = float(np.clip(curvature, 0.0, 1.0)) * 0.5
    return SignFlipFocus(index_or_none, confidence, _runner_up(whole, index_or_none), whole,
                         "mirror-valley")


def _curvature(curve: np.ndarray, index: int) -> float:
    """Second difference of ``curve`` at ``index`` over +/-2 samples (NaN-safe: 0)."""
    if index < 2 or index + 2 >= len(curve):
        return 0.0
    value = curve[index - 2] + curve[index + 2] - 2.0 * curve[index]
    return float(value) if np.isfinite(value) else 0.0


def _sharpest_valley(curve: np.ndarray) -> int | None:
    """The local minimum with the largest curvature, if it reaches the threshold.

    Far-defocus slices change slowly and their mirror curve can sag into broad valleys;
    the focus valley is a sharp V, so sharpness, not depth, ranks them.
    """
    best: tuple[float, int] | None = None
    for k in range(1, len(curve) - 1):
        if not (curve[k] <= curve[k - 1] and curve[k] <= curve[k + 1]):
            continue  # NaN comparisons are False: only interior valid minima
        sharpness = _curvature(curve, k)
        if sharpness >= MIN_VALLEY_CURVATURE and (best is None or sharpness > best[0]):
            best = (sharpness, k)
    return None if best is None else best[1]


def _runner_up(curve: np.ndarray, index: int) -> int | None:
    """The lowest local minimum of ``curve`` at least 2 samples from ``index``."""
    candidates = [
        k
        for k in range(len(curve))
        if abs(k - index) >= 2
        and np.isfinite(curve[k])
        and all(
            not np.isfinite(curve[j]) or curve[k] <= curve[j]
            for j in (k - 1, k + 1)
            if 0 <= j < len(curve)
        )
    ]
    return min(candidates, key=lambda k: curve[k]) if candidates else None
