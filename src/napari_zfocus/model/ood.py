"""Out-of-distribution check: does this image look like the training images at its z?

A model shown images from another microscope, another sample or with the wrong pixel size
is often *confidently* wrong: its softmax stays sharp while its estimate is off by
microns, so no softmax score can tell. What does tell is the image itself. The power
spectrum of a bright-field image at a given defocus is set by the optics (defocus transfer
function, condenser aperture, wavelength), the sample (cell size, refractive index,
absorption) and the pixel size, so it is a fingerprint of the model's world at that z.

The check, cheap enough for every live frame (one FFT of the model's input, ~0.2 ms):

1. :func:`spectral_features` -- the share of the input's power (after the per-image
   z-score the network sees) in :data:`N_BANDS` logarithmically spaced rings of spatial
   frequency, as logarithms;
2. :class:`OODReference` -- per z-bin, the reference images' mean features and the
   covariance of their deviations from it (a bin's own covariance shrunk towards the
   pooled one, weighted as :data:`SHRINK_IMAGES` images, so sparse bins stay stable);
   fitted by :func:`fit_ood_reference` on images of the model's world at their true z;
3. the **OOD score** of an image: its squared Mahalanobis distance from the reference at
   the z the model *predicted*, divided by a threshold. A score above 1 means out of
   distribution: the image does not look like the model's world at the z it claims.

The threshold is the :data:`OOD_QUANTILE` quantile of the reference images' distances
computed by cross-validation over :data:`CV_FOLDS` groups of stacks (each group scored by
a reference fitted without it): distances of the very images a reference was fitted on
are too small, and a threshold taken from them would flag new stacks of the model's own
world far more often than 1 %.

Measured in ``benchmarks/bench_calibration.py`` (README, "Calibrated confidence").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_zfocus.errors import ZFocusError
from napari_zfocus.validation import check_number

__all__ = [
    "N_BANDS",
    "OOD_QUANTILE",
    "OODReference",
    "fit_ood_reference",
    "spectral_features",
]

#: Frequency rings of the spectrum (more separate worlds better but need more reference
#: images per dimension; 12 was best of 6-16 on the benchmark's worlds).
N_BANDS = 12
#: Lowest ring edge, cycles per pixel (at least one frequency step of the input).
LOWEST_FREQUENCY = 0.02
#: Quantile of the reference images' (cross-validated) distances that scores 1.
OOD_QUANTILE = 0.99
#: Weight of the pooled covariance in each bin's, in images (a bin of 20 images: half).
SHRINK_IMAGES = 20
#: Groups of stacks the threshold is cross-validated over.
CV_FOLDS = 5
#: Fewest reference images of a z-bin for its own mean (others borrow the nearest).
MIN_IMAGES_PER_BIN = 3
#: Fewest reference images per feature (a covariance of 12 features needs a few hundred).
MIN_IMAGES_PER_FEATURE = 10
#: Images transformed at once by :func:`spectral_features` (bounds its memory).
_CHUNK = 256
#: Feature layout written into model files (a change of :func:`spectral_features` bumps it).
FEATURES_NAME = "log_band_power_v1"


@functools.lru_cache(maxsize=16)
def _band_matrix(side: int) -> Any:
    """``(coefficients, rings)`` 0/1 float32 tensor: which ``rfft2`` coefficient of a
    ``side x side`` image falls into which frequency ring (empty rings dropped)."""
    import torch  # here, not at the top: this module is read by torch-free code paths

    ky = np.fft.fftfreq(side) * side
    kx = np.fft.rfftfreq(side) * side
    radius = np.hypot(ky[:, None], kx[None, :]).ravel()
    edges = np.geomspace(max(1.0, LOWEST_FREQUENCY * side), side / math.sqrt(2) + 1e-6,
                         N_BANDS + 1)
    band = np.clip(np.digitize(radius, edges) - 1, 0, N_BANDS - 1)
    inside = radius >= edges[0]  # leaves out the mean (zero after the z-score)
    matrix = np.zeros((radius.size, N_BANDS), dtype=np.float32)
    matrix[np.flatnonzero(inside), band[inside]] = 1.0
    # A small input leaves some rings empty. Cached, so shared by every call: never
    # modified in place.
    return torch.from_numpy(np.ascontiguousarray(matrix[:, matrix.any(axis=0)]))


def spectral_features(images: Any) -> np.ndarray:
    """Log share of power per frequency ring of normalised square images.

    Parameters
    ----------
    images
        ``(N, n, n)`` or ``(N, 1, n, n)`` array or tensor (any float dtype): network inputs
        (z-scored). Done in chunks, so thousands of images need little memory.

    Returns
    -------
    np.ndarray
        ``(N, bands)`` float64; NaN rows for non-finite images.
    """
    import torch  # here, not at the top: this module is read by torch-free code paths

    if isinstance(images, torch.Tensor):
        x = images.detach().to("cpu", torch.float32)
    else:
        x = torch.from_numpy(np.array(images, dtype=np.float32))  # a copy: never read-only
    x = x.reshape(-1, x.shape[-2], x.shape[-1])
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"spectral features need square images, got {tuple(x.shape[-2:])}")
    rings = _band_matrix(int(x.shape[-1]))
    out = np.empty((len(x), rings.shape[1]))
    for start in range(0, len(x), _CHUNK):
        coeffs = torch.view_as_real(torch.fft.rfft2(x[start : start + _CHUNK]))
        # |c|^2 as re^2 + im^2 and the ring sums in float32 (relative error ~1e-6, far
        # below the spread of the features): numpy's float64 path cost ~1.5 ms a frame.
        power = coeffs.pow(2).sum(dim=-1).reshape(len(coeffs), -1)
        out[start : start + len(coeffs)] = (power @ rings).double().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        # 1e-12: an empty ring of a flat image is a very small share, not log(0).
        return np.log(out / out.sum(axis=1, keepdims=True) + 1e-12)


def _check_covariances(covs: np.ndarray) -> np.ndarray:
    """Precisions of ``(n_bins, bands, bands)`` covariances; refuses non-finite,
    asymmetric or not positive definite ones (a hand-edited model file)."""
    if not np.isfinite(covs).all():
        raise ZFocusError("ood reference: covariances must be finite numbers")
    if not np.allclose(covs, np.swapaxes(covs, 1, 2), rtol=1e-9, atol=1e-12):
        raise ZFocusError("ood reference: a covariance is not symmetric")
    try:
        inv = np.linalg.inv(np.linalg.cholesky(covs))
    except np.linalg.LinAlgError:
        raise ZFocusError("ood reference: a covariance is not positive definite") from None
    return np.swapaxes(inv, 1, 2) @ inv


@dataclass(frozen=True)
class OODReference:
    """What the reference images' spectra look like at every z (see the module doc).

    Attributes
    ----------
    means
        ``(n_bins, bands)`` mean features per z-bin.
    covariances
        ``(n_bins, bands, bands)`` covariance of the deviations from the mean, per z-bin.
    threshold
        Squared Mahalanobis distance scored as 1.
    n_images
        Reference images it was fitted on.
    quantile
        Quantile of the cross-validated reference distances the threshold is.
    """

    means: np.ndarray
    covariances: np.ndarray
    threshold: float
    n_images: int
    quantile: float = OOD_QUANTILE
    _precisions: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        means = np.asarray(self.means, dtype=np.float64)
        covs = np.asarray(self.covariances, dtype=np.float64)
        if means.ndim != 2 or covs.shape != (len(means), means.shape[1], means.shape[1]):
            raise ZFocusError(
                f"ood reference: means {means.shape} and covariances {covs.shape} do not fit"
            )
        if not np.isfinite(means).all():
            raise ZFocusError("ood reference: means must be finite numbers")
        precisions = _check_covariances(covs)
        checked = {
            "threshold": check_number(self.threshold, "ood reference threshold", lo=0,
                                      lo_open=True, strict=True),
            "n_images": check_number(self.n_images, "ood reference n_images", lo=1,
                                     integer=True, strict=True),
            "quantile": check_number(self.quantile, "ood reference quantile", lo=0,
                                     lo_open=True, hi=1, strict=True),
            "means": means, "covariances": covs, "_precisions": precisions,
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def distances(self, features: np.ndarray, z_um: np.ndarray,
                  bin_centres_um: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances of ``features`` from the reference at ``z_um``:
        the means interpolated between bin centres, the nearest bin's covariance."""
        centres = np.asarray(bin_centres_um, dtype=np.float64)
        if len(centres) != len(self.means):
            raise ValueError(f"{len(centres)} bins but {len(self.means)} reference means")
        f = np.atleast_2d(np.asarray(features, dtype=np.float64))
        z = np.atleast_1d(np.asarray(z_um, dtype=np.float64))
        mean = np.stack([np.interp(z, centres, col) for col in self.means.T], axis=1)
        d = f - mean
        nearest = _nearest_bins(np.nan_to_num(z), centres)
        return np.einsum("ij,ijk,ik->i", d, self._precisions[nearest], d)

    def score(self, features: np.ndarray, z_um: np.ndarray,
              bin_centres_um: np.ndarray) -> np.ndarray:
        """OOD score per image: distance over the threshold (> 1: out of distribution;
        NaN for a NaN estimate or image)."""
        return self.distances(features, z_um, bin_centres_um) / self.threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the model file's ``calibration`` entry)."""
        return {
            "features": FEATURES_NAME,
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
            "threshold": float(self.threshold),
            "quantile": float(self.quantile),
            "n_images": int(self.n_images),
        }

    @classmethod
    def from_dict(cls, d: Any, n_bins: int) -> OODReference:
        """Inverse of :meth:`to_dict`, checked against a model of ``n_bins`` bins.

        Raises
        ------
        ZFocusError
            One line naming the bad entry.
        """
        if not isinstance(d, dict):
            raise ZFocusError("ood reference must be a JSON object")
        if d.get("features") != FEATURES_NAME:
            raise ZFocusError(
                f"ood reference: unknown features {d.get('features')!r} (newer version?)"
            )
        try:
            means = np.asarray(d["means"], dtype=np.float64)
            covs = np.asarray(d["covariances"], dtype=np.float64)
        except KeyError as exc:
            raise ZFocusError(f"ood reference: no {exc.args[0]} entry") from None
        except (TypeError, ValueError):
            raise ZFocusError("ood reference: means and covariances must be number arrays") \
                from None
        if means.ndim != 2 or means.shape[0] != n_bins:
            raise ZFocusError(
                f"ood reference: means have shape {means.shape}, expected ({n_bins}, bands)"
            )
        # Checked (finite, in range, the right type) by __post_init__.
        threshold: Any = d.get("threshold")
        n_images: Any = d.get("n_images")
        return cls(means, covs, threshold=threshold, n_images=n_images,
                   quantile=d.get("quantile", OOD_QUANTILE))


def _nearest_bins(z_um: np.ndarray, centres: np.ndarray) -> np.ndarray:
    step = centres[1] - centres[0] if len(centres) > 1 else 1.0
    return np.clip(np.rint((z_um - centres[0]) / step), 0, len(centres) - 1).astype(np.int64)


def _fit(features: np.ndarray, bins: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Means and shrunk covariances per bin (see the module doc). A bin of fewer than
    :data:`MIN_IMAGES_PER_BIN` images borrows the nearest such bin's mean."""
    counts = np.bincount(bins, minlength=n_bins)
    filled = np.flatnonzero(counts)
    enough = np.flatnonzero(counts >= MIN_IMAGES_PER_BIN)
    enough = enough if enough.size else filled
    means = np.empty((n_bins, features.shape[1]))
    for j in enough:
        means[j] = features[bins == j].mean(axis=0)
    for k in np.setdiff1d(np.arange(n_bins), enough):
        means[k] = means[enough[np.argmin(np.abs(enough - k))]]
    resid = features - means[bins]
    pooled = np.cov(resid, rowvar=False)
    # A small ridge keeps a feature that barely varies from dominating the distance.
    pooled += 1e-6 * max(float(np.trace(pooled)) / len(pooled), 1e-12) * np.eye(len(pooled))
    covs = np.repeat(pooled[None], n_bins, axis=0)
    for j in filled:
        r = resid[bins == j]
        own = r.T @ r  # deviations from the bin's own mean: a scatter of n images
        covs[j] = (own + SHRINK_IMAGES * pooled) / (len(r) + SHRINK_IMAGES)
    return means, covs


def fit_ood_reference(features: np.ndarray, z_um: np.ndarray, bin_centres_um: np.ndarray,
                      *, groups: np.ndarray | None = None,
                      quantile: float = OOD_QUANTILE) -> OODReference | None:
    """Fit the reference on images of the model's world at their TRUE z.

    Parameters
    ----------
    features
        ``(N, bands)`` :func:`spectral_features` of the reference images.
    z_um
        ``(N,)`` their true defocus.
    bin_centres_um
        The model's bin centres.
    groups
        ``(N,)`` stack of each image: the threshold is cross-validated over groups of
        whole stacks (neighbouring slices of one stack look alike). Default: the images
        are in stack order, and :data:`CV_FOLDS` contiguous runs of them are the groups.
    quantile
        Quantile of the cross-validated distances that scores 1.

    Returns
    -------
    OODReference or None
        ``None`` with fewer than :data:`MIN_IMAGES_PER_FEATURE` finite images per feature
        (no reliable covariance: the model then has no OOD check).
    """
    f = np.asarray(features, dtype=np.float64)
    z = np.asarray(z_um, dtype=np.float64)
    n_all = len(f)
    fold = (np.arange(n_all) * CV_FOLDS // max(n_all, 1) if groups is None
            else np.asarray(groups, dtype=np.int64) % CV_FOLDS)
    ok = np.isfinite(f).all(axis=1) & np.isfinite(z)
    f, z, fold = f[ok], z[ok], fold[ok]
    if len(f) < MIN_IMAGES_PER_FEATURE * f.shape[1]:
        return None
    centres = np.asarray(bin_centres_um, dtype=np.float64)
    bins = _nearest_bins(z, centres)
    held_out = np.full(len(f), np.nan)
    for k in np.unique(fold):
        test = fold == k
        if test.all():  # one group only: no held-out estimate possible
            break
        means, covs = _fit(f[~test], bins[~test], len(centres))
        part = OODReference(means, covs, threshold=1.0, n_images=int((~test).sum()))
        held_out[test] = part.distances(f[test], z[test], centres)
    means, covs = _fit(f, bins, len(centres))
    if np.isnan(held_out).all():
        held_out = OODReference(means, covs, 1.0, len(f)).distances(f, z, centres)
    threshold = max(float(np.nanquantile(held_out, quantile)), 1e-12)
    return OODReference(means, covs, threshold=threshold, n_images=len(f), quantile=quantile)
