"""Camera model: noise statistics, vignetting, offset, 16-bit clipping."""

from __future__ import annotations

import numpy as np
import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.simulation import CameraParams, apply_camera, vignetting_map


def test_mean_and_noise_follow_gain_offset_shot_and_read_noise():
    cam = CameraParams(photons=2000.0, vignetting=0.0, read_noise_e=5.0, gain=2.0,
                       offset_adu=100.0)
    img = apply_camera(np.ones((200, 200), np.float32), cam, np.random.default_rng(0))
    assert img.dtype == np.uint16
    adu = img.astype(np.float64)
    assert adu.mean() == pytest.approx(100 + 2 * 2000, rel=2e-3)
    expected_sd = 2.0 * np.sqrt(2000 + 5.0**2)
    assert adu.std() == pytest.approx(expected_sd, rel=0.03)


def test_low_light_uses_poisson_counts():
    cam = CameraParams(photons=4.0, vignetting=0.0, read_noise_e=0.0, gain=1.0, offset_adu=0.0)
    img = apply_camera(np.ones((300, 300), np.float32), cam, np.random.default_rng(1))
    assert img.mean() == pytest.approx(4.0, rel=0.03)
    assert img.var() == pytest.approx(4.0, rel=0.06)
    assert (img == 0).mean() == pytest.approx(np.exp(-4.0), abs=0.01)


def test_vignetting_darkens_corners():
    cam = CameraParams(vignetting=0.2)
    v = vignetting_map((101, 101), cam)
    assert v[50, 50] == pytest.approx(1.0, abs=1e-3)
    assert v[0, 0] == pytest.approx(0.8, abs=0.01)


def test_bright_pixels_clip_at_65535_and_seed_is_deterministic():
    cam = CameraParams(photons=30000.0, gain=4.0)
    img = apply_camera(np.full((2, 8, 8), 2.0, np.float32), cam, np.random.default_rng(2))
    assert img.max() == 65535
    again = apply_camera(np.full((2, 8, 8), 2.0, np.float32), cam, np.random.default_rng(2))
    np.testing.assert_array_equal(img, again)


def test_bad_camera_settings_raise():
    with pytest.raises(ZFocusError):
        apply_camera(np.ones((4, 4)), CameraParams(photons=0.0), np.random.default_rng())
