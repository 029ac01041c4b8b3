"""The feature network: defocus features that mean what they say, and a network that
sizes, trains and saves like the CNNs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import FEATURE_SETTINGS, ModelConfig, _network_size
from napari_zfocus.model.defocus_features import DefocusFeatures, _mean_pool2, _sorted_rows
from napari_zfocus.model.feature_layout import (
    BAND_QUANTILES,
    IMAGE_QUANTILES,
    STATS_PER_BAND,
    feature_layout,
    linear_ring_edges,
)
from napari_zfocus.model.io import load_model, save_model
from napari_zfocus.model.network import FeatureMLP, build_network, count_parameters


def _cells(side: int = 120, seed: int = 0, sign: float = 1.0) -> torch.Tensor:
    """Blurred bright (``sign`` +1) or dark (-1) blobs on a flat background, (1, 1, H, W)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    img = np.zeros((side, side))
    for cy, cx in rng.uniform(10, side - 10, size=(12, 2)):
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2))
    return torch.tensor(1000 + sign * 200 * img, dtype=torch.float32)[None, None]


@pytest.mark.parametrize(("pixel_um", "field_um"), [(0.24, 60.0), (0.6, 60.0), (0.24, 10.0),
                                                    (1.0, 36.0)])
def test_the_layout_counts_what_the_extractor_computes(pixel_um, field_um) -> None:
    features = DefocusFeatures(pixel_um, field_um)
    side = int(round(field_um / pixel_um))
    out = features(torch.randn(3, 1, side, side))
    assert out.shape == (3, feature_layout(pixel_um, field_um).n_features)
    assert torch.isfinite(out).all()


def test_features_ignore_exposure_gain_and_camera_offset() -> None:
    features = DefocusFeatures(0.5, 60.0)
    x = _cells()
    a, b = features(x), features(3.0 * x + 250.0)
    # 1 % in the log power of rings ~1e-4 below the peak: float32 rounding of 1000 counts.
    assert torch.allclose(a, b, atol=1e-2)


def test_bright_and_dark_cores_give_opposite_skewness() -> None:
    """The sign of defocus: bright lens foci (above focus) vs dark cores (below)."""
    features = DefocusFeatures(0.5, 60.0)
    bright, dark = features(_cells(sign=1.0))[0], features(_cells(sign=-1.0))[0]
    skew = len(IMAGE_QUANTILES) + 1 + STATS_PER_BAND * np.arange(features.layout.levels + 1)
    assert (bright[skew] * dark[skew] <= 1e-6).all()  # opposite signs, band by band
    assert bright[skew].abs().max() > 0.5
    # The image quantiles mirror: q(1 - p) of the bright image is -q(p) of the dark one.
    q = len(IMAGE_QUANTILES)
    assert torch.allclose(bright[:q], -dark[:q].flip(0), atol=0.05)


def test_band_statistics_match_numpy() -> None:
    """The vectorised moments equal the textbook ones on the low-pass residual."""
    features = DefocusFeatures(1.0, 40.0)
    x = _cells(side=40, seed=3)
    out = features(x)[0]
    # Rebuild the residual the way the extractor does (z-score, blur, halve per level).
    g = (x - x.mean()) / x.std(correction=0)
    for _ in range(features.layout.levels):
        g = features._blur(g)[..., ::2, ::2]
    band = g.flatten().double().numpy()
    centred = band - band.mean()
    std = np.sqrt((centred**2).mean())
    start = len(IMAGE_QUANTILES) + STATS_PER_BAND * features.layout.levels
    expected = [np.log(std), (centred**3).mean() / std**3, np.log((centred**4).mean() / std**4)]
    expected += list((np.quantile(band, BAND_QUANTILES) - band.mean()) / std)
    assert np.allclose(out[start:start + STATS_PER_BAND].numpy(), expected, atol=1e-3)


def test_a_constant_image_gives_finite_features() -> None:
    out = DefocusFeatures(0.24, 30.0)(torch.full((2, 1, 125, 125), 500.0))
    assert torch.isfinite(out).all()


def test_a_grating_lights_the_spectrum_ring_of_its_frequency() -> None:
    pixel_um, field_um, freq = 0.25, 64.0, 0.5  # cycles/um
    side = int(field_um / pixel_um)
    xs = torch.arange(side) * pixel_um
    grating = torch.cos(2 * np.pi * freq * xs)[None, :].expand(side, side)
    features = DefocusFeatures(pixel_um, field_um)
    out = features(grating[None, None].contiguous())[0]
    linear = out[-features.layout.linear_rings:]
    edges = linear_ring_edges(pixel_um, field_um)
    peak = int(torch.argmax(linear))
    assert edges[peak] - 0.02 <= freq <= edges[peak + 1] + 0.02


@pytest.mark.parametrize("overrides", [{}, {"field_um": 20.0}, {"fc_features": 32,
                                                                 "pixel_size_um": 0.6}])
def test_size_estimate_matches_the_network(overrides) -> None:
    config = ModelConfig.for_architecture("feature_mlp", **overrides)
    net = build_network(config)
    assert isinstance(net, FeatureMLP)
    assert _network_size(config)[0] == count_parameters(net)
    out = net.eval()(torch.randn(2, 1, config.input_px, config.input_px))
    assert out.shape == (2, config.n_bins)


def test_the_preset_and_an_absurd_size_refused() -> None:
    config = ModelConfig.for_architecture("feature_mlp")
    assert (config.architecture, config.pixel_size_um) == ("feature_mlp", 0.48)
    assert config.fc_features == FEATURE_SETTINGS["fc_features"]
    with pytest.raises(ZFocusError, match="parameters"):
        ModelConfig.for_architecture("feature_mlp", fc_features=16384)


def test_round_trip_keeps_the_feature_standardisation(tmp_path: Path) -> None:
    torch.manual_seed(2)
    config = ModelConfig.for_architecture("feature_mlp", field_um=20.0, fc_features=16)
    net = build_network(config)
    net.train()(torch.randn(8, 1, config.input_px, config.input_px) * 3)  # moves BN stats
    net.eval()
    path = save_model(tmp_path / "features.zfm", net, config, metadata={})
    loaded = load_model(path)
    assert loaded.config.architecture == "feature_mlp"
    names = set(loaded.net.state_dict())
    assert not any(name.startswith("features.") for name in names)  # derived, not stored
    x = torch.randn(2, 1, config.input_px, config.input_px)
    with torch.no_grad():
        assert torch.allclose(net(x), loaded.net(x))


def test_gradients_reach_the_classifier_only() -> None:
    config = ModelConfig.for_architecture("feature_mlp", field_um=20.0, fc_features=16)
    net = build_network(config).train()
    net(torch.randn(4, 1, config.input_px, config.input_px)).sum().backward()
    grads = [p.grad for p in net.classifier.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert not list(net.features.parameters())


@pytest.mark.parametrize("shape", [(1, 1, 250, 250), (3, 1, 63, 63), (2, 1, 8, 7), (1, 1, 1, 1)])
def test_the_fast_pooling_equals_avg_pool_with_ceil_mode(shape) -> None:
    x = torch.randn(shape)
    expected = torch.nn.functional.avg_pool2d(x, 2, ceil_mode=True)
    torch.testing.assert_close(_mean_pool2(x), expected, atol=1e-6, rtol=1e-5)


def test_the_fast_blur_is_the_binomial_filter() -> None:
    """Four pair sums per axis are the (1 4 6 4 1)/16 filter with reflected edges."""
    x = torch.randn(2, 1, 40, 33)
    w = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    expected = torch.nn.functional.conv2d(padded, (w[:, None] * w[None, :])[None, None])
    torch.testing.assert_close(DefocusFeatures(0.24, 10.0)._blur(x), expected,
                               atol=1e-5, rtol=1e-5)


def test_rows_sort_alike_on_numpy_and_torch() -> None:
    x = torch.randn(4, 997)[:, ::3]  # a strided view, as the quantiles take
    torch.testing.assert_close(_sorted_rows(x), x.sort(dim=1).values)
