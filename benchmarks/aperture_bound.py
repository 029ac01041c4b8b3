"""How well can ANY reader of a single image do when the condenser aperture changes per stack?

A bound, not a benchmark of our models. Far from focus the bright-field image of a thin
phase object is, to first order, the Laplacian of its phase blurred by a disc of radius
``|z| NA_c / n`` (every illumination angle of the condenser shifts the defocused image
sideways by ``z tan(theta)``). The transfer function's zeros, the one cue that gives ``z``
alone, lie inside that blur's envelope only while ``|z| < 0.372 n lambda / NA_c^2``
(where ``sqrt(n / (lambda z))``, the first zero, is below ``0.61 n / (z NA_c)``, the
envelope's): 1.7 um at NA_c 0.4, 4.4 um at 0.25, 0.9 um at 0.55 (water, 0.55 um light).
Beyond that an image tells
- the blur scale ``z * NA_c`` (the size of the defocused cells' halo), and
- the contrast scale ``z * dn`` (how strong it is, if the image is not z-scored),
and nothing that separates ``z`` from the aperture ``NA_c`` or the cells' index ``dn``.

This script draws images as a world draws them (``z`` of the slices of stacks whose focus
lies in a range, ``NA_c`` per stack, ``dn`` per field, both uniform) and gives the
reader the best possible guess: ``z`` exactly where the zeros are visible, elsewhere the
``z`` that maximises the chance of being within +/-1 um given the exact blur scale (and,
with ``--contrast``, the exact contrast scale too). The share within +/-1 um is an upper
bound for a single-image reader of that world under this first-order optics
(``within_1um``); ``within_1um_expected_value`` is the same for a reader that reports the
mean of its posterior (the expected-value readout of a calibrated softmax, the readout the
accuracy targets use), which is worse where the posterior is wide. A reader can
beat it only through what the model leaves out (ceiling cells at a known height, the
transfer function's higher orders, absorption).

Usage::

    python benchmarks/aperture_bound.py                      # the waveorder world as drawn
    python benchmarks/aperture_bound.py --condenser-na 0.4 0.4   # one microscope

The defaults are the waveorder world's (``benchmarks/worlds/waveorder_world.py``).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

#: The waveorder world's ranges (benchmarks/worlds/waveorder_world.py, phantoms.py).
CONDENSER_NA = (0.25, 0.55)
INDEX_EXCESS = (0.02, 0.06)
FOCUS_RANGE = (10, 20)
N_SLICES = 31
WAVELENGTH_UM = 0.55
N_MEDIA = 1.33
#: The envelope of a disc source's defocus blur first vanishes at 0.61 / radius.
_JINC_ZERO = 0.61


def zeros_visible(z_um: np.ndarray, condenser_na: np.ndarray) -> np.ndarray:
    """Whether the transfer function's first zero lies inside the blur's envelope."""
    limit = _JINC_ZERO**2 * N_MEDIA * WAVELENGTH_UM / condenser_na**2
    return np.abs(z_um) < limit


def draw_images(rng: np.random.Generator, n: int, condenser_na: tuple[float, float],
                index_excess: tuple[float, float]) -> dict[str, np.ndarray]:
    """``n`` images: true z (1 um slices), the stack's aperture and the field's index."""
    focus = rng.integers(FOCUS_RANGE[0], FOCUS_RANGE[1] + 1, n)
    z = (rng.integers(0, N_SLICES, n) - focus).astype(float)
    return {"z": z, "na": rng.uniform(*condenser_na, n), "dn": rng.uniform(*index_excess, n)}


def best_guesses(z: np.ndarray, keys: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Per image, the candidate z most often within +/-1 um of the true z among images
    with the same observation ``keys`` (the Bayes choice for a within-1-um score)."""
    guess = np.empty_like(z)
    order = np.argsort(keys, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(keys[order])) + 1)
    for group in groups:
        hits = np.abs(z[group][:, None] - candidates[None, :]) <= 1.0
        guess[group] = candidates[int(np.argmax(hits.mean(axis=0)))]
    return guess


def posterior_means(z: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Per image, the mean true z among images with the same observation ``keys``: what
    an expected-value readout of a perfectly calibrated softmax reports."""
    _, group = np.unique(keys, return_inverse=True)
    sums = np.bincount(group, weights=z)
    return (sums / np.bincount(group))[group]


def observation_keys(images: dict[str, np.ndarray], contrast: bool, bins: int) -> np.ndarray:
    """What the reader sees, binned finely: the blur scale, and the contrast scale."""
    def binned(values: np.ndarray) -> np.ndarray:
        lo, hi = float(values.min()), float(values.max())
        return np.clip(((values - lo) / max(hi - lo, 1e-12) * bins).astype(np.int64), 0, bins)

    keys = binned(images["z"] * images["na"])
    if contrast:
        keys = keys * (bins + 1) + binned(images["z"] * images["dn"])
    return keys


def bound(n: int, seed: int, condenser_na: tuple[float, float],
          index_excess: tuple[float, float], contrast: bool) -> dict[str, float]:
    """The bound's share within +/-1 um, and the share of images whose zeros are visible."""
    rng = np.random.default_rng(seed)
    images = draw_images(rng, n, condenser_na, index_excess)
    # Fine bins for one observation; coarser for two (each bin needs images to vote).
    keys = observation_keys(images, contrast, bins=150 if contrast else 600)
    # Where the zeros show, the reader reads z itself: those images form their own groups
    # (one per z), so they neither count as ambiguous nor blur the others' posteriors.
    visible = zeros_visible(images["z"], images["na"])
    keys = np.where(visible, keys.max() + 1 + (images["z"] - images["z"].min()).astype(np.int64),
                    keys)
    candidates = np.round(np.arange(-20.0, 20.0 + 1e-9, 0.1), 1)
    within = np.abs(best_guesses(images["z"], keys, candidates) - images["z"]) <= 1.0
    within_mean = np.abs(posterior_means(images["z"], keys) - images["z"]) <= 1.0
    return {"within_1um": float(within.mean()),
            "within_1um_expected_value": float(within_mean.mean()),
            "zeros_visible": float(visible.mean()), "images": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--condenser-na", type=float, nargs=2, default=CONDENSER_NA,
                        metavar=("LO", "HI"))
    parser.add_argument("--index-excess", type=float, nargs=2, default=INDEX_EXCESS,
                        metavar=("LO", "HI"))
    parser.add_argument("--images", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = {"condenser_na": list(args.condenser_na), "index_excess": list(args.index_excess)}
    for contrast in (False, True):
        key = "blur_and_contrast" if contrast else "blur_only"
        out[key] = bound(args.images, args.seed, tuple(args.condenser_na),
                         tuple(args.index_excess), contrast)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
