"""Out-of-distribution check: spectral features, the reference, its stored form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.ood import N_BANDS, OODReference, fit_ood_reference, spectral_features

CENTRES = np.arange(-5.0, 6.0)
SIDE = 50  # the TINY model's input


def _textures(z: np.ndarray, seed: int, scale: float = 1.0) -> np.ndarray:
    """z-scored noise blurred more the further from focus (a world whose look follows z)."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(z), SIDE, SIDE), dtype=np.float32)
    for i, zi in enumerate(z):
        img = gaussian_filter(rng.normal(size=(SIDE, SIDE)), scale * (0.6 + 0.4 * abs(zi)),
                              mode="wrap")
        out[i] = (img - img.mean()) / img.std()
    return out


def test_spectral_features_are_shares_of_power_per_ring() -> None:
    x = _textures(np.zeros(3), 0)
    f = spectral_features(x[:, None])  # (N, 1, n, n) network inputs work too
    assert f.shape == (3, N_BANDS)
    assert np.exp(f).sum(axis=1) == pytest.approx(np.ones(3), abs=1e-6)
    # blurrier images put their power in the low rings
    blurred = spectral_features(_textures(np.full(3, 5.0), 1))
    assert (blurred[:, -1] < f[:, -1]).all() and (blurred[:, 0] > f[:, 0]).all()
    assert np.isnan(spectral_features(np.full((1, SIDE, SIDE), np.nan))).all()


def test_spectral_features_of_arrays_tensors_and_read_only_arrays_agree() -> None:
    x = _textures(np.zeros(2), 3)
    frozen = x.copy()
    frozen.flags.writeable = False
    reference = spectral_features(x.astype(np.float64))
    for images in (x, frozen, torch.from_numpy(x), torch.from_numpy(x)[:, None]):
        np.testing.assert_allclose(spectral_features(images), reference, atol=1e-5)
    np.testing.assert_array_equal(frozen, x)  # read, never written


def test_reference_flags_another_world_but_few_of_its_own() -> None:
    rng = np.random.default_rng(5)
    z_ref = rng.integers(-5, 6, 600).astype(float)
    ref = fit_ood_reference(spectral_features(_textures(z_ref, 2)), z_ref, CENTRES)
    assert ref is not None and ref.n_images == 600
    z_new = rng.integers(-5, 6, 300).astype(float)
    own = ref.score(spectral_features(_textures(z_new, 3)), z_new, CENTRES)
    assert np.mean(own > 1) <= 0.05
    # Another world: textures 2.5x finer than the reference's at the same z.
    other = ref.score(spectral_features(_textures(z_new, 4, scale=0.4)), z_new, CENTRES)
    assert np.mean(other > 1) >= 0.9
    # The SAME image read at the wrong z is out of distribution too (confidently wrong).
    far = ref.score(spectral_features(_textures(np.zeros(50), 6)), np.full(50, 5.0), CENTRES)
    assert np.mean(far > 1) >= 0.9
    assert np.isnan(ref.score(spectral_features(_textures([0.0], 7)), [np.nan], CENTRES)).all()


def test_too_few_reference_images_give_no_reference() -> None:
    z = np.zeros(N_BANDS * 10 - 1)
    assert fit_ood_reference(spectral_features(_textures(z, 0)), z, CENTRES) is None


def test_stored_form_round_trips_and_is_checked() -> None:
    rng = np.random.default_rng(1)
    z = rng.integers(-5, 6, 200).astype(float)
    feats = spectral_features(_textures(z, 8))
    ref = fit_ood_reference(feats, z, CENTRES)
    back = OODReference.from_dict(ref.to_dict(), n_bins=len(CENTRES))
    assert np.allclose(back.score(feats, z, CENTRES), ref.score(feats, z, CENTRES))
    d = ref.to_dict()
    with pytest.raises(ZFocusError, match=r"expected \(12, bands\)"):
        OODReference.from_dict(d, n_bins=12)
    cases = {
        "covariances": ([[1.0, 2.0], [2.0, 1.0]], "do not fit"),
        "threshold": (float("nan"), "threshold must be"),
        "features": ("log_band_power_v9", "unknown features"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(ZFocusError, match=message):
            OODReference.from_dict(dict(d, **{key: value}), n_bins=len(CENTRES))
    covs = np.asarray(d["covariances"])
    not_pd = covs.copy()
    not_pd[3] = -np.eye(covs.shape[1])  # one bin's covariance edited
    with pytest.raises(ZFocusError, match="not positive definite"):
        OODReference.from_dict(dict(d, covariances=not_pd.tolist()), n_bins=len(CENTRES))
    skew = covs.copy()
    skew[0, 0, 1] += 1.0
    with pytest.raises(ZFocusError, match="not symmetric"):
        OODReference.from_dict(dict(d, covariances=skew.tolist()), n_bins=len(CENTRES))
