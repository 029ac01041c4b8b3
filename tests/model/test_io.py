"""Model files: round trip, and refusal of missing, truncated, foreign and tampered files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from _model_files import read_raw, rewrite_model, write_v1_model
from _tiny import TINY
from napari_zfocus.errors import ModelFileError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import (
    FORMAT_VERSION,
    load_model,
    read_model_info,
    save_model,
    upgrade_model_file,
)
from napari_zfocus.model.network import build_network


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module, ModelConfig]:
    torch.manual_seed(0)
    config = ModelConfig(**TINY)
    net = build_network(config).eval()
    path = save_model(
        tmp_path / "tiny.zfm",
        net,
        config,
        metadata={"train": {"n_stacks": 3}, "val_within_1um": 0.5},
    )
    return path, net, config


def test_round_trip_gives_identical_outputs(saved) -> None:
    path, net, config = saved
    loaded = load_model(path)
    assert loaded.config == config
    assert loaded.metadata == {"train": {"n_stacks": 3}, "val_within_1um": 0.5}
    assert loaded.info["format_version"] == FORMAT_VERSION
    assert not loaded.net.training
    x = torch.randn(3, 1, config.input_px, config.input_px)
    with torch.no_grad():
        assert torch.equal(net(x), loaded.net(x))
    cfg, meta, info = read_model_info(path)
    assert cfg == config and meta["val_within_1um"] == 0.5 and info["sha256"]


def test_valid_file_whose_header_length_starts_like_a_pickle_loads(tmp_path: Path) -> None:
    # The first 8 bytes are the JSON header length; its low byte may be 0x80, the
    # pickle opcode. Regression: such a valid model was refused as a pickle.
    config = ModelConfig(**TINY)
    net = build_network(config)
    path = tmp_path / "m.zfm"
    for pad in range(300):
        save_model(path, net, config, metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert load_model(path).metadata["pad"] == "x" * pad


def test_save_is_atomic_and_leaves_no_temp_files(saved, tmp_path: Path) -> None:
    path, _, _ = saved
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


class _Evil:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickled_payload_is_refused_and_never_runs(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.zfm"
    if writer == "torch.save":
        torch.save({"state_dict": _Evil(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ModelFileError, match="refusing") as err:
        load_model(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_missing_truncated_and_foreign_files(saved, tmp_path: Path) -> None:
    path, _, _ = saved
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "nope.zfm")
    data = path.read_bytes()
    for name, content in [
        ("cut.zfm", data[: len(data) // 2]),
        ("head.zfm", data[:20]),
        ("text.zfm", b"hello, not a model\n"),
        ("empty.zfm", b""),
    ]:
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(ModelFileError) as err:
            load_model(bad)
        assert str(bad) in str(err.value)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ModelFileError, match="not a napari-zfocus model"):
        load_model(foreign)


def test_tampered_files_are_refused(saved, tmp_path: Path) -> None:
    path, net, _config = saved
    with pytest.raises(ModelFileError, match="newer"):
        load_model(rewrite_model(path, tmp_path / "v.zfm", format_version=str(FORMAT_VERSION + 1)))
    with pytest.raises(ModelFileError, match="format version"):
        load_model(rewrite_model(path, tmp_path / "v2.zfm", format_version="x"))
    # An attacker who recomputes the hash still meets the content checks.
    with pytest.raises(ModelFileError, match="unknown model settings"):
        load_model(rewrite_model(path, tmp_path / "c.zfm", settings={"evil": 1}, reseal="v2"))
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    sd["classifier.4.weight"] = torch.zeros(7, 32)  # wrong number of z-bins
    with pytest.raises(ModelFileError, match="7 z-bins"):
        load_model(rewrite_model(path, tmp_path / "s.zfm", tensors=sd, reseal="v2"))
    del sd["classifier.4.weight"]
    with pytest.raises(ModelFileError, match="missing"):
        load_model(rewrite_model(path, tmp_path / "m.zfm", tensors=sd, reseal="v2"))


META_EDITS = {
    "bins_1_to_2_um": {"settings": {"bin_um": 2.0, "z_min_um": -10.0, "z_max_um": 10.0}},
    "pixel_size": {"settings": {"pixel_size_um": 0.25}},
    "user_metadata": {"metadata": json.dumps({"val_within_1um": 0.99})},
    "created_utc": {"created_utc": "2020-01-01T00:00:00+00:00"},
    "added_entry": {"note": "hello"},
    "dropped_entry": {"drop": ("torch_version",)},
    "bin_centres": {"bin_centres_um": json.dumps(list(range(11)))},
}


@pytest.mark.parametrize("edit", sorted(META_EDITS))
def test_any_metadata_edit_fails_the_integrity_check(saved, tmp_path: Path, edit: str) -> None:
    path, _, _ = saved
    bad = rewrite_model(path, tmp_path / "edited.zfm", **META_EDITS[edit])
    with pytest.raises(ModelFileError, match="integrity check failed") as err:
        load_model(bad)
    assert str(err.value).startswith(str(bad))


def test_a_weight_edit_fails_the_integrity_check(saved, tmp_path: Path) -> None:
    path, net, _ = saved
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    sd["classifier.4.bias"] += 0.01  # a quiet edit of the weights
    with pytest.raises(ModelFileError, match="integrity check failed"):
        load_model(rewrite_model(path, tmp_path / "w.zfm", tensors=sd))


def test_version_1_files_load_and_upgrade_bit_for_bit(tmp_path: Path) -> None:
    torch.manual_seed(1)
    config = ModelConfig(**TINY)
    net = build_network(config).eval()
    old = write_v1_model(tmp_path / "old.zfm", net, config, {"note": "v1"})
    loaded = load_model(old)
    assert loaded.info["format_version"] == 1 and loaded.metadata == {"note": "v1"}
    x = torch.randn(2, 1, config.input_px, config.input_px)
    with torch.no_grad():
        assert torch.equal(loaded.net(x), net(x))
    new = upgrade_model_file(old, tmp_path / "new.zfm")
    (old_meta, old_t), (new_meta, new_t) = read_raw(old), read_raw(new)
    assert set(old_t) == set(new_t) and all(torch.equal(old_t[k], new_t[k]) for k in old_t)
    assert new_meta["created_utc"] == old_meta["created_utc"]
    assert new_meta["format_version"] == str(FORMAT_VERSION)
    assert load_model(new).info["format_version"] == FORMAT_VERSION
    # From now on the metadata is covered too.
    with pytest.raises(ModelFileError, match="integrity"):
        load_model(rewrite_model(new, tmp_path / "e.zfm", settings={"bin_um": 2.0}))


def test_upgrade_refuses_a_tampered_file_and_leaves_it(tmp_path: Path) -> None:
    config = ModelConfig(**TINY)
    old = write_v1_model(tmp_path / "old.zfm", build_network(config), config)
    bad = rewrite_model(old, tmp_path / "bad.zfm", bin_centres_um=json.dumps([0.0] * 11))
    before = bad.read_bytes()
    with pytest.raises(ModelFileError, match="bin centres"):
        upgrade_model_file(bad)
    assert bad.read_bytes() == before


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # The hostile tester's case: +10 um read as +19 um. Same number of bins,
        # so only the stored bin centres can tell.
        ({"bin_um": 2.0, "z_min_um": -10.0, "z_max_um": 10.0}, "bin centres"),
        ({"bin_um": 2.0}, "bin centres"),
        ({"pixel_size_um": 0.3}, "bin centres|features"),
    ],
)
def test_version_1_metadata_edits_are_caught_by_consistency(tmp_path, edit, message) -> None:
    config = ModelConfig(**TINY)
    old = write_v1_model(tmp_path / "old.zfm", build_network(config), config)
    bad = rewrite_model(old, tmp_path / "bad.zfm", settings=edit)
    with pytest.raises(ModelFileError, match=message):
        load_model(bad)


def test_version_1_edit_of_config_and_bin_centres_together_hits_the_weights(tmp_path) -> None:
    config = ModelConfig(**TINY)
    old = write_v1_model(tmp_path / "old.zfm", build_network(config), config)
    edited = ModelConfig(**dict(TINY, bin_um=2.0))  # 6 bins, the weights have 11
    bad = rewrite_model(old, tmp_path / "bad.zfm", settings={"bin_um": 2.0},
                        bin_centres_um=json.dumps(edited.bin_centres_um.tolist()))
    with pytest.raises(ModelFileError, match="11 z-bins but the configuration describes 6"):
        load_model(bad)
    config_px = ModelConfig(**dict(TINY, pixel_size_um=0.4))  # 30 px input: 1 x 1 after pools
    bad = rewrite_model(old, tmp_path / "px.zfm", settings={"pixel_size_um": 0.4})
    assert config_px.input_px == 30
    with pytest.raises(ModelFileError, match="take 32 features but a 30 px input"):
        load_model(bad)


def test_shipped_demo_model_is_in_the_current_format() -> None:
    from napari_zfocus.live.headless import demo_model_path

    loaded = load_model(demo_model_path())
    assert loaded.info["format_version"] == FORMAT_VERSION
    _, stored = read_raw(demo_model_path())
    assert stored["classifier.4.weight"].dtype == torch.float16


def test_half_precision_storage_round_trip(tmp_path):
    """float16 storage halves the file and loads back as a float32 network."""
    import torch

    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.model.io import load_model, save_model
    from napari_zfocus.model.network import build_network

    cfg = ModelConfig(field_um=12.0, conv_features=(4, 8), fc_features=32)
    net = build_network(cfg).eval()
    full = save_model(tmp_path / "full.zfm", net, cfg)
    half = save_model(tmp_path / "half.zfm", net, cfg, weights_dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half).net.eval()
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(2, 1, cfg.input_px, cfg.input_px)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-2, rtol=1e-2)
