"""The compact CNN: its size is known before it is built, it saves and loads like the paper's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import (
    ARCHITECTURE_SETTINGS,
    ARCHITECTURES,
    IGNORED_SETTINGS,
    ModelConfig,
    _network_size,
)
from napari_zfocus.model.io import load_model, save_model
from napari_zfocus.model.network import CompactCNN, build_network, count_parameters

#: A value other than every architecture's preset, per setting a network may ignore.
_OTHER_VALUES = {"batchnorm": False, "conv_features": (4, 8), "kernel_size": 5,
                 "pool_size": 3}


@pytest.mark.parametrize(
    "overrides",
    [{}, {"batchnorm": False}, {"conv_features": (8, 16), "pixel_size_um": 1.2},
     {"field_um": 30.0, "fc_features": 32}],
)
def test_size_estimate_matches_the_network(overrides) -> None:
    config = ModelConfig.compact(**overrides)
    net = build_network(config)
    assert isinstance(net, CompactCNN)
    assert _network_size(config)[0] == count_parameters(net)
    out = net.eval()(torch.zeros(2, 1, config.input_px, config.input_px))
    assert out.shape == (2, config.n_bins)


def test_the_readout_does_not_depend_on_where_the_cells_are() -> None:
    """Global pooling: a field and its circular shift give (nearly) the same logits."""
    torch.manual_seed(0)
    config = ModelConfig.compact(field_um=32.0, pixel_size_um=1.0)
    net = build_network(config).eval()
    x = torch.randn(1, 1, 32, 32)
    shifted = torch.roll(x, shifts=(16, 16), dims=(2, 3))
    a, b = net(x), net(shifted)
    assert torch.corrcoef(torch.stack([a.ravel(), b.ravel()]))[0, 1] > 0.9


def test_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    config = ModelConfig.compact(conv_features=(8, 16), fc_features=16)
    net = build_network(config).eval()
    path = save_model(tmp_path / "compact.zfm", net, config, metadata={})
    loaded = load_model(path)
    assert loaded.config.architecture == "compact_cnn"
    x = torch.randn(2, 1, config.input_px, config.input_px)
    with torch.no_grad():
        assert torch.equal(net(x), loaded.net(x))


def test_a_too_small_input_is_refused() -> None:
    with pytest.raises(ZFocusError, match="too small"):
        ModelConfig.compact(field_um=6.0)  # 10 px for 4 stride-2 stages (16 px needed)


def test_each_architecture_has_its_cpu_budget_setting() -> None:
    assert ModelConfig.for_architecture("compact_cnn") == ModelConfig.compact()
    assert ModelConfig.for_architecture("paper_cnn", dropout=0.1) == ModelConfig(
        pixel_size_um=1.2, batchnorm=True, dropout=0.1)
    # The default since issue #12's last change: the feature network at 0.48 um/px.
    assert ModelConfig.recommended() == ModelConfig.for_architecture("feature_mlp")
    with pytest.raises(ZFocusError, match="architecture"):
        ModelConfig.for_architecture("resnet")
    assert tuple(ARCHITECTURE_SETTINGS) == ARCHITECTURES  # one setting per network


def _structure(net: torch.nn.Module) -> tuple[str, list[tuple[str, tuple[int, ...]]]]:
    """The layers (repr) and every parameter's name and shape."""
    return repr(net), [(n, tuple(p.shape)) for n, p in net.state_dict().items()]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_ignored_settings_do_not_change_the_network(architecture) -> None:
    """What the training form greys out must really be unread: the same network (layer by
    layer, parameter shapes) whatever those settings say."""
    assert tuple(IGNORED_SETTINGS) == ARCHITECTURES
    ignored = IGNORED_SETTINGS[architecture]
    assert ignored <= set(_OTHER_VALUES)
    preset = _structure(build_network(ModelConfig.for_architecture(architecture)))
    for setting in _OTHER_VALUES:
        other = _structure(build_network(ModelConfig.for_architecture(
            architecture, **{setting: _OTHER_VALUES[setting]})))
        if setting in ignored:
            assert other == preset, setting
        else:  # a setting that is read does change it (the check above could fail)
            assert other != preset, setting
