"""Photometric augmentation: random, reproducible, and it keeps the defocus signal."""

from __future__ import annotations

import numpy as np

from napari_zfocus.training.augment import photometric


def _crops(n: int = 6, side: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    crops = rng.standard_normal((n, side, side)).astype(np.float32)
    return crops


def test_changes_every_crop_reproducibly() -> None:
    original = _crops()
    a = photometric(original.copy(), np.random.default_rng(1))
    b = photometric(original.copy(), np.random.default_rng(1))
    c = photometric(original.copy(), np.random.default_rng(2))
    assert a.shape == original.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # Every crop changed (the curve and the ramp always apply).
    assert all(not np.allclose(a[i], original[i]) for i in range(len(a)))
    assert np.isfinite(a).all()


def test_the_signal_survives() -> None:
    """Augmented crops stay strongly correlated with the originals (no destroyed images)."""
    original = _crops(n=32)
    out = photometric(original.copy(), np.random.default_rng(3))
    for i in range(len(out)):
        r = np.corrcoef(original[i].ravel(), out[i].ravel())[0, 1]
        assert r > 0.3


def test_draws_a_fixed_number_of_values() -> None:
    """The generator ends in a state that does not depend on the crops' content."""
    g1, g2 = np.random.default_rng(4), np.random.default_rng(4)
    photometric(_crops(), g1)
    photometric(np.zeros((6, 40, 40), np.float32), g2)
    # Noise draws depend only on which crops got noise (the same for both).
    assert g1.random() == g2.random()
