"""Classic focus-score (IQA) baselines, evaluated the way the paper did.

A focus score (variance of Laplacian, Brenner, Tenengrad, normalised variance) says how
sharp an image is, not where it is in z. The paper's "IQA profile" method turns a score
into a z estimate, generously:

1. per stack, compute the score of every slice and normalise the score-vs-z profile
   to 0..1 (min-max over the stack) -- this needs the whole stack, which a live
   microscope does not have;
2. from the fitting stacks (a training set, or every other stack: leave-one-out) build
   a mapping from normalised score to |z| (median |z| in score bins, interpolated);
3. predict |z| of each test image from its normalised score and take the sign from the
   truth (an oracle: a focus score cannot tell above from below focus).

The CNN needs none of these crutches, which is the point of the comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ScoreFn",
    "focus_score_functions",
    "normalise_profile",
    "ProfileMapping",
    "fit_profile_mapping",
    "iqa_profile_predict",
]

ScoreFn = Callable[[np.ndarray], float]


def focus_score_functions() -> dict[str, ScoreFn]:
    """The classic focus scores of :mod:`napari_zfocus.annotation.focus_scores`, by name."""
    from napari_zfocus.annotation.focus_scores import FOCUS_SCORES

    return dict(FOCUS_SCORES)  # type: ignore[arg-type]  # each returns a float on a 2-D field


def normalise_profile(scores: np.ndarray) -> np.ndarray:
    """Min-max normalise one stack's score profile to 0..1 (a flat profile gives 0.5)."""
    s = np.asarray(scores, dtype=np.float64)
    lo, hi = np.nanmin(s), np.nanmax(s)
    if not np.isfinite(hi - lo) or hi - lo <= 0:
        return np.full_like(s, 0.5)
    return (s - lo) / (hi - lo)


@dataclass
class ProfileMapping:
    """Piecewise-linear map from a normalised score (0..1) to |z| in um."""

    knots: np.ndarray  # normalised score at each knot, ascending
    abs_z_um: np.ndarray  # median |z| at each knot

    def __call__(self, normalised_score: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(normalised_score, dtype=np.float64), self.knots, self.abs_z_um)


def fit_profile_mapping(
    normalised_scores: np.ndarray, abs_z_um: np.ndarray, n_bins: int = 20
) -> ProfileMapping:
    """Median |z| in ``n_bins`` equal score bins over 0..1, empty bins skipped.

    No monotonicity is imposed: in bright-field, cells can be *least* contrasted at
    focus, so a score may rise or fall towards focus depending on the sample.
    """
    s = np.asarray(normalised_scores, dtype=np.float64).ravel()
    z = np.abs(np.asarray(abs_z_um, dtype=np.float64).ravel())
    ok = np.isfinite(s) & np.isfinite(z)
    s, z = s[ok], z[ok]
    if s.size == 0:
        return ProfileMapping(np.array([0.0, 1.0]), np.array([0.0, 0.0]))
    which = np.clip((s * n_bins).astype(int), 0, n_bins - 1)
    knots, values = [], []
    for b in range(n_bins):
        sel = which == b
        if sel.any():
            knots.append(float(np.mean(s[sel])))
            values.append(float(np.median(z[sel])))
    return ProfileMapping(np.asarray(knots), np.asarray(values))


def iqa_profile_predict(
    stack_scores: Sequence[np.ndarray],
    stack_z_um: Sequence[np.ndarray],
    *,
    fit: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
    n_bins: int = 20,
) -> list[np.ndarray]:
    """Signed z predictions of the IQA-profile method for every test stack.

    Parameters
    ----------
    stack_scores
        Raw focus scores, one array per test stack (its slices in the z range).
    stack_z_um
        True z of those slices (for the oracle sign, and for leave-one-out fitting).
    fit
        ``(scores, z)`` of separate fitting (training) stacks. ``None``: leave-one-out,
        each test stack is predicted with a mapping fitted on all the other test
        stacks (on itself if it is the only one, which flatters the baseline).
    n_bins
        Score bins of the mapping.

    Returns
    -------
    list of numpy.ndarray
        Predicted signed z (um), aligned with ``stack_scores``.
    """
    norm = [normalise_profile(s) for s in stack_scores]
    z = [np.asarray(v, dtype=np.float64) for v in stack_z_um]
    shared: ProfileMapping | None = None
    if fit is not None:
        fit_norm = [normalise_profile(s) for s in fit[0]]
        shared = fit_profile_mapping(
            np.concatenate(fit_norm) if fit_norm else np.empty(0),
            np.concatenate([np.asarray(v) for v in fit[1]]) if fit_norm else np.empty(0),
            n_bins,
        )
    out: list[np.ndarray] = []
    for i in range(len(norm)):
        mapping = shared
        if mapping is None:
            others = [j for j in range(len(norm)) if j != i] or [i]
            mapping = fit_profile_mapping(
                np.concatenate([norm[j] for j in others]),
                np.concatenate([z[j] for j in others]),
                n_bins,
            )
        sign = np.where(z[i] < 0, -1.0, 1.0)  # oracle sign, as the paper
        out.append(sign * mapping(norm[i]))
    return out


def score_image(image: np.ndarray, scores: Mapping[str, ScoreFn]) -> dict[str, float]:
    """Every score of one image."""
    return {name: float(fn(image)) for name, fn in scores.items()}
