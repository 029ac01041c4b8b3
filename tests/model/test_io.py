"""Model files: round trip, and refusal of missing, truncated, foreign and tampered files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from _tiny import TINY
from safetensors import safe_open
from safetensors.torch import save_file

from napari_zfocus.errors import ModelFileError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import FORMAT_VERSION, load_model, read_model_info, save_model
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


def _rewrite(src: Path, dst: Path, *, tensors=None, **meta_changes) -> Path:
    """Copy a model file, changing tensors and/or header entries (a tamperer's edit)."""
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
        data = {k: f.get_tensor(k) for k in f.keys()}
    meta.update(meta_changes)
    save_file(tensors if tensors is not None else data, str(dst), metadata=meta)
    return dst


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
    path, net, config = saved
    with pytest.raises(ModelFileError, match="newer"):
        load_model(_rewrite(path, tmp_path / "v.zfm", format_version=str(FORMAT_VERSION + 1)))
    with pytest.raises(ModelFileError, match="format version"):
        load_model(_rewrite(path, tmp_path / "v2.zfm", format_version="x"))
    with pytest.raises(ModelFileError, match="unknown model settings"):
        cfg = dict(config.to_dict(), evil=1)
        load_model(_rewrite(path, tmp_path / "c.zfm", config=json.dumps(cfg)))
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    sd["classifier.4.weight"] = torch.zeros(7, 32)  # wrong number of z-bins
    with pytest.raises(ModelFileError, match="shape"):
        load_model(_rewrite(path, tmp_path / "s.zfm", tensors=sd))
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    sd["classifier.4.bias"] += 0.01  # a quiet edit of the weights
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(_rewrite(path, tmp_path / "w.zfm", tensors=sd))
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    del sd["classifier.4.bias"]
    with pytest.raises(ModelFileError, match="missing"):
        load_model(_rewrite(path, tmp_path / "m.zfm", tensors=sd))


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
