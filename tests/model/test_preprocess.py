"""Preprocessing in physical units: resampling, field crop, normalisation, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tiny import TINY
from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.preprocess import (
    block_mean,
    centre_crop,
    field_source_px,
    normalise,
    prepare,
    prepare_batch,
    resample,
)


@pytest.fixture
def config() -> ModelConfig:
    return ModelConfig(**TINY)


def _zscore(a: np.ndarray) -> np.ndarray:
    return (a - a.mean()) / a.std()


def test_integer_downsampling_recovers_the_coarse_grid() -> None:
    rng = np.random.default_rng(0)
    coarse = rng.random((30, 40)).astype(np.float32)  # at 0.24 um/px
    fine = np.kron(coarse, np.ones((4, 4), np.float32))  # the same scene at 0.06 um/px
    out = resample(fine, 0.06, 0.24)
    assert out.shape == (1, 1, 30, 40)
    np.testing.assert_allclose(out[0, 0].numpy(), coarse, atol=1e-6)


def test_prepare_crops_the_centre_field_in_um_then_downsamples(config: ModelConfig) -> None:
    rng = np.random.default_rng(1)
    coarse = rng.random((100, 120)).astype(np.float32) * 1000  # 24 x 28.8 um at 0.24 um/px
    fine = np.kron(coarse, np.ones((4, 4), np.float32)).astype(np.uint16)  # at 0.06 um/px
    assert field_source_px(0.06, config) == 200  # 12 um / 0.06 um
    x = prepare(fine, 0.06, config)
    assert x.shape == (1, 1, 50, 50) and x.dtype == torch.float32
    # centre 12 um field of a 24 x 28.8 um image starts at 6 um, 8.4 um = coarse px 25, 35
    expected = _zscore(np.floor(coarse).astype(np.float64)[25:75, 35:85])
    np.testing.assert_allclose(x[0, 0].numpy(), expected, atol=1e-4)


def test_non_integer_factor_sees_the_same_physical_field(config: ModelConfig) -> None:
    # One smooth scene sampled at 0.06 and at 0.1 um/px must give nearly the same input.
    # 28.8 um = 480 / 288 / 72 px: every centre crop starts at the same physical point.
    def scene(px: float, side_um: float = 28.8) -> np.ndarray:
        n = int(round(side_um / px))
        c = (np.arange(n) + 0.5) * px - side_um / 2  # pixel centres, um from image centre
        yy, xx = np.meshgrid(c, c, indexing="ij")
        return (np.sin(xx / 1.3) + np.cos(yy / 0.9) + 0.05 * xx).astype(np.float32)

    a = prepare(scene(0.06), 0.06, config)[0, 0].numpy()
    b = prepare(scene(0.1), 0.1, config)[0, 0].numpy()
    assert b.shape == (50, 50)
    assert np.abs(a - b).mean() < 0.05
    # coarser than the model (0.4 um/px): bilinear upsampling, same field
    c = prepare(scene(0.4), 0.4, config)[0, 0].numpy()
    assert c.shape == (50, 50)
    assert np.corrcoef(a.ravel(), c.ravel())[0, 1] > 0.999


def test_normalise_is_per_image_and_safe_on_constant_images() -> None:
    rng = np.random.default_rng(2)
    batch = torch.from_numpy(rng.normal(5, 3, (3, 1, 20, 20)).astype(np.float32))
    batch[1] = 60000.0  # constant image with a large offset (float32 rounding!)
    out = normalise(batch)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0].mean(), torch.tensor(0.0), atol=1e-5)
    assert torch.allclose(out[0].std(correction=0), torch.tensor(1.0), atol=1e-4)
    assert out[1].abs().max() < 1e-3


def test_prepare_constant_uint16_frame_gives_zeros(config: ModelConfig) -> None:
    x = prepare(np.full((300, 300), 60000, np.uint16), 0.06, config)
    assert torch.isfinite(x).all() and x.abs().max() < 1e-3


def test_prepare_does_not_modify_the_callers_array(config: ModelConfig) -> None:
    image = np.arange(50 * 50, dtype=np.float32).reshape(50, 50)
    before = image.copy()
    prepare(image, 0.24, config)
    np.testing.assert_array_equal(image, before)


def test_nan_inside_the_field_is_refused_outside_is_ignored(config: ModelConfig) -> None:
    image = np.ones((80, 80), np.float32)
    image[0, 0] = np.nan  # outside the centre 50 px field
    prepare(image, 0.24, config)
    image[40, 40] = np.nan
    with pytest.raises(ZFocusError, match="NaN"):
        prepare(image, 0.24, config)


@pytest.mark.parametrize(
    ("image", "px", "match"),
    [
        (np.zeros((2, 60, 60)), 0.24, "2-D"),
        (np.zeros((60, 60), np.complex64), 0.24, "numeric"),
        (np.zeros((60, 60)), 0.0, "positive"),
        (np.zeros((60, 60)), float("nan"), "positive"),
        (np.zeros((60, 60)), "abc", "number"),
        (np.zeros((40, 60)), 0.24, "smaller than the model's field"),
    ],
)
def test_bad_input_raises_zfocus_error(config: ModelConfig, image, px, match) -> None:
    with pytest.raises(ZFocusError, match=match):
        prepare(image, px, config)


def test_centre_crop_and_batch(config: ModelConfig) -> None:
    a = np.arange(100).reshape(10, 10)
    np.testing.assert_array_equal(centre_crop(a, 4), a[3:7, 3:7])
    x = prepare_batch([np.random.rand(60, 60), np.random.rand(250, 250)], [0.24, 0.06], config)
    assert x.shape == (2, 1, 50, 50)
    with pytest.raises(ZFocusError, match="pixel sizes"):
        prepare_batch([np.random.rand(60, 60)], [0.24, 0.24], config)


def test_normalise_survives_values_whose_variance_overflows_float32() -> None:
    """1e37 counts are finite in float32 but their variance is not: the z-score must not
    turn into NaN (a NaN input reads as a broken model)."""
    x = torch.rand(2, 1, 16, 16) + 1.0
    out = normalise(x * 1e37)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, normalise(x), atol=1e-4, rtol=1e-4)
    mixed = torch.stack([x[0] * 1e37, x[1]])  # only the huge image is rescaled
    torch.testing.assert_close(normalise(mixed), normalise(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("shape", "k"), [((1, 1, 1000, 1000), 4), ((2, 1, 103, 98), 10),
                                           ((1, 1, 7, 9), 3), ((1, 1, 5, 5), 5)])
def test_block_mean_is_area_averaging(shape, k) -> None:
    """The fast strided sums give avg_pool2d's result: same rows, same means."""
    x = torch.randn(shape)
    expected = torch.nn.functional.avg_pool2d(x, k)
    out = block_mean(x, k)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_values_whose_sum_overflows_are_still_accepted(config: ModelConfig) -> None:
    """The finiteness check's fast path (a finite sum) falls back to the element-wise
    check, so a finite image of huge values is not refused as 'NaN or infinite'."""
    image = np.full((60, 60), 3e38, np.float32)
    image[::2] = 1e38
    x = prepare(image, 0.24, config)
    assert torch.isfinite(x).all()
    image[30, 30] = np.inf
    with pytest.raises(ZFocusError, match="NaN or infinite"):
        prepare(image, 0.24, config)
