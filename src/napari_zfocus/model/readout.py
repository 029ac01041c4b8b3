"""Read a z estimate, its confidence and ambiguity out of the softmax over z-bins.

The paper's readout is the centre of the most probable bin (1 um steps). We add:

- a **local expected value**: the probability-weighted mean of the bin centres inside a
  window around the mode, re-centred until it settles (a mean shift). It gives sub-bin
  estimates, and because the window stays on the main mode a second, separate mode (cells
  on the chamber ceiling as well as the floor) cannot drag it to a z between the two;
- **confidence**: probability mass within +/-1 bin of the mode (0..1);
- **entropy** of the softmax in nats (0 = certain, ``log(n_bins)`` = uniform);
- a **bimodal** flag: two modes separated by a dip, each holding substantial mass, the
  paper's floor + ceiling failure case. The controller refuses to move on such images.

A softmax with NaN or infinite values (from non-finite logits) reads as z, confidence and
entropy NaN, never as a number.

:func:`window_mass` is the softmax mass within a distance of a given z (each bin's mass
spread evenly over its width, so it is continuous in z): the calibrated confidence of
:mod:`.calibration` is built on it.

All functions accept one softmax ``(B,)`` or a batch ``(N, B)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Readout", "BimodalRule", "softmax", "readout", "window_mass"]


@dataclass(frozen=True)
class BimodalRule:
    """When a softmax counts as bimodal.

    Attributes
    ----------
    min_separation_bins
        The second mode must lie more than this many bins from the first.
    mode_radius_bins
        Mass of a mode = probability within +/- this many bins of its peak.
    min_mass
        Both modes need at least this mass.
    max_valley_ratio
        Somewhere between the peaks the softmax must drop to at most this fraction of
        the second peak (a real dip, not the shoulder of one broad mode).
    """

    min_separation_bins: int = 3
    mode_radius_bins: int = 1
    min_mass: float = 0.15
    max_valley_ratio: float = 0.5


@dataclass
class Readout:
    """Readout of N softmaxes (arrays of length N, or scalars for one softmax)."""

    z_um: np.ndarray
    z_argmax_um: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray
    bimodal: np.ndarray
    second_mode_um: np.ndarray  # NaN where there is no second mode


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def window_mass(
    probs: np.ndarray, bin_centres_um: np.ndarray, centre_um: np.ndarray | float,
    half_width_um: float = 1.0,
) -> np.ndarray:
    """Probability that z lies within ``centre_um +/- half_width_um``.

    Each bin's mass is spread evenly over its width (``bin_centres_um`` +/- half a bin),
    so the result changes continuously with ``centre_um`` (counting whole bins would jump
    as the estimate crosses a bin centre).

    Parameters
    ----------
    probs
        ``(B,)`` or ``(N, B)`` probabilities over evenly spaced bins (rows summing to 1).
    bin_centres_um
        ``(B,)`` ascending bin centres.
    centre_um
        One centre per row (scalar for one softmax).
    half_width_um
        Half-width of the window.

    Returns
    -------
    np.ndarray
        ``(N,)`` masses in 0..1 (0-d for one softmax); NaN where a row or centre is NaN.
    """
    p = np.asarray(probs, dtype=np.float64)
    c = np.asarray(bin_centres_um, dtype=np.float64)
    bin_um = float(c[1] - c[0]) if c.size > 1 else 1.0
    z = np.asarray(centre_um, dtype=np.float64)[..., None]
    lo = np.maximum(c - bin_um / 2, z - half_width_um)
    hi = np.minimum(c + bin_um / 2, z + half_width_um)
    overlap = np.clip(hi - lo, 0.0, None) / bin_um  # NaN centres stay NaN
    return np.clip((p * overlap).sum(axis=-1), 0.0, 1.0)


def _local_expected_value(
    p: list[float], centres: list[float], mode: int, bin_um: float, window_bins: float
) -> float:
    """Mean shift in a trapezoid window (flat to +/-window, then a 1-bin linear ramp).

    Plain Python over the dozen bins the window can reach: this runs on every live
    frame, and for so few numbers it is several times faster than numpy calls.
    """
    n = len(p)
    reach = int(window_bins) + 2
    lo, hi = max(0, mode - reach), min(n, mode + reach + 1)
    local = list(zip(p[lo:hi], centres[lo:hi], strict=True))
    m = centres[mode]
    edge = window_bins + 0.5
    for _ in range(50):
        mass = moment = 0.0
        for pi, ci in local:
            # The linear ramp makes the estimate a continuous function of the softmax.
            w = edge - abs(ci - m) / bin_um
            if w > 0.0:
                w = pi * (w if w < 1.0 else 1.0)
                mass += w
                moment += w * ci
        if mass <= 0.0:
            return m
        new = moment / mass
        if abs(new - m) < 1e-3 * bin_um:  # 1 nm at 1 um bins
            return new
        m = new
    return m


def _second_mode(p: list[float], mode: int, rule: BimodalRule) -> tuple[bool, int | None]:
    """Is there a second, separated mode with substantial mass? (flag, its bin)."""
    n = len(p)
    sep, r = rule.min_separation_bins, rule.mode_radius_bins
    cand, best = -1, 0.0
    for i in range(n):
        if abs(i - mode) > sep and p[i] > best:
            cand, best = i, p[i]
    if cand < 0:
        return False, None
    mass1 = sum(p[max(0, mode - r) : mode + r + 1])
    mass2 = sum(p[max(0, cand - r) : cand + r + 1])
    a, b = (mode, cand) if mode < cand else (cand, mode)
    valley = min(p[a + 1 : b]) if b - a > 1 else best
    # On the shoulder of one broad mode the values between the two "peaks" never drop
    # below the candidate, so the valley test rejects it.
    flag = (
        mass1 >= rule.min_mass and mass2 >= rule.min_mass and valley <= rule.max_valley_ratio * best
    )
    return bool(flag), cand


def readout(
    probs: np.ndarray,
    bin_centres_um: np.ndarray,
    *,
    window_bins: float = 2.0,
    rule: BimodalRule | None = None,
) -> Readout:
    """Read z, confidence, entropy and bimodality from softmax probabilities.

    Parameters
    ----------
    probs
        ``(B,)`` or ``(N, B)`` probabilities over the z-bins (rows are renormalised).
    bin_centres_um
        ``(B,)`` ascending, evenly spaced bin centres.
    window_bins
        Half-width of the expected-value window around the mode, in bins.
    rule
        Bimodality thresholds (default :class:`BimodalRule`).

    Returns
    -------
    Readout
        Arrays of length N, or 0-d arrays when ``probs`` is 1-D.
    """
    rule = rule or _DEFAULT_RULE
    p = np.asarray(probs, dtype=np.float64)
    single = p.ndim == 1
    rows_in = [p.tolist()] if single else p.tolist()
    centres = np.asarray(bin_centres_um, dtype=np.float64).tolist()
    nb = len(centres)
    if p.shape[-1] != nb:
        raise ValueError(f"softmax has {p.shape[-1]} bins but {nb} bin centres given")
    bin_um = centres[1] - centres[0] if nb > 1 else 1.0

    # Plain Python per row: B is ~10-50 numbers, where numpy's per-call overhead would
    # dominate the live loop's readout time.
    rows = [_read_row(row, centres, bin_um, window_bins, rule) for row in rows_in]
    columns = list(zip(*rows, strict=True)) or [()] * 6  # no rows: six empty columns
    z, z_arg, conf, ent, bimodal, second = (list(column) for column in columns)
    if single:
        return Readout(*(np.asarray(c[0]) for c in (z, z_arg, conf, ent, bimodal, second)))
    return Readout(
        np.asarray(z),
        np.asarray(z_arg),
        np.asarray(conf),
        np.asarray(ent),
        np.asarray(bimodal, dtype=bool),
        np.asarray(second),
    )


def _read_row(
    row: list[float], centres: list[float], bin_um: float, window_bins: float, rule: BimodalRule
) -> tuple[float, float, float, float, bool, float]:
    """(z, z_argmax, confidence, entropy, bimodal, second mode) of one softmax row."""
    nb = len(centres)
    total = sum(row)
    if not math.isfinite(total):
        # NaN / inf logits (a broken model: negative BatchNorm variance, overflowing
        # weights) give a NaN softmax. Reading it as uniform would answer a made-up z
        # with a plausible confidence; NaN makes every caller refuse or hold instead.
        return math.nan, math.nan, math.nan, math.nan, False, math.nan
    row = [v / total for v in row] if total > 0 else [1.0 / nb] * nb
    mode = max(range(nb), key=row.__getitem__)
    z = _local_expected_value(row, centres, mode, bin_um, window_bins)
    conf = sum(row[max(0, mode - 1) : mode + 2])
    ent = -sum(v * math.log(v) for v in row if v > 0.0)
    flag, cand = _second_mode(row, mode, rule)
    second = centres[cand] if flag and cand is not None else math.nan
    return z, centres[mode], conf, ent, flag, second


_DEFAULT_RULE = BimodalRule()
