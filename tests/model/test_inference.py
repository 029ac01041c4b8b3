"""Predictor: single and batched prediction, input checks, tiled focus maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny import TINY
from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.inference import FocusMap, Prediction, Predictor
from napari_zfocus.model.io import save_model
from napari_zfocus.model.network import build_network


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(**TINY)
    net = build_network(config)
    return save_model(tmp_path_factory.mktemp("m") / "tiny.zfm", net, config)


@pytest.fixture(scope="module")
def predictor(model_path: Path) -> Predictor:
    return Predictor.from_file(model_path, device="cpu")


def test_predict_returns_a_consistent_prediction(predictor: Predictor) -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 4000, (260, 300), dtype=np.uint16)  # 0.06 um/px, > 12 um field
    p = predictor.predict(frame, 0.06)
    assert isinstance(p, Prediction)
    assert p.softmax.shape == (11,) and p.softmax.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(p.bin_centres_um, np.arange(-5.0, 6.0))
    assert -5.0 <= p.z_um <= 5.0 and p.z_argmax_um in p.bin_centres_um
    assert 0.0 <= p.confidence <= 1.0 and p.entropy >= 0.0
    d = p.to_dict()
    assert set(d) >= {
        "z_um",
        "z_argmax_um",
        "confidence",
        "entropy",
        "bimodal",
        "softmax",
        "bin_centres_um",
    }
    assert predictor.config.input_px == 50 and not predictor.net.training


def test_batch_matches_single_and_resampling_is_physical(predictor: Predictor) -> None:
    rng = np.random.default_rng(1)
    coarse = rng.random((60, 70)).astype(np.float32)
    fine = np.kron(coarse, np.ones((4, 4), np.float32))
    single = predictor.predict(coarse, 0.24)
    batch = predictor.predict_batch([coarse, fine], [0.24, 0.06])
    # the same scene at 0.24 or 0.06 um/px is the same network input
    for b in batch:
        np.testing.assert_allclose(b.softmax, single.softmax, atol=1e-5)
    stack = predictor.predict_batch(np.stack([coarse, coarse]), 0.24)
    assert len(stack) == 2


@pytest.mark.parametrize(
    ("image", "px", "match"),
    [
        (np.full((60, 60), np.nan), 0.24, "NaN"),
        (np.zeros((3, 60, 60)), 0.24, "2-D"),
        (np.zeros((60, 60)), -1.0, "positive"),
        (np.zeros((30, 30)), 0.24, "smaller"),
    ],
)
def test_predict_refuses_bad_input(predictor: Predictor, image, px, match) -> None:
    with pytest.raises(ZFocusError, match=match):
        predictor.predict(image, px)


def test_tile_geometry_is_in_input_pixels(predictor: Predictor) -> None:
    rng = np.random.default_rng(2)
    image = rng.random((130, 180)).astype(np.float32)  # 0.24 um/px, field = 50 px
    fm = predictor.predict_tiles(image, 0.24)
    assert isinstance(fm, FocusMap)
    assert fm.shape == (2, 3) and fm.tile_px == 50 and fm.stride_px == 50
    assert fm.tops.tolist() == [15, 65] and fm.lefts.tolist() == [15, 65, 115]  # grid centred
    assert fm.z_um.shape == fm.confidence.shape == fm.bimodal.shape == (2, 3)
    assert fm.softmax.shape == (2, 3, 11)
    boxes = fm.boxes()
    assert boxes[1, 2].tolist() == [65, 115, 115, 165]
    # every tile's value is the model's reading of exactly that box of the input
    for r, c in [(0, 0), (1, 2)]:
        top, left, bottom, right = boxes[r, c]
        p = predictor.predict(image[top:bottom, left:right], 0.24)
        assert fm.z_um[r, c] == pytest.approx(p.z_um, abs=1e-5)
        np.testing.assert_allclose(fm.softmax[r, c], p.softmax, atol=1e-5)
    scale, translate = fm.layer_transform()
    assert scale == (50, 50) and translate == (15 + 24.5, 15 + 24.5)
    scale_um, _ = fm.layer_transform(in_um=True)
    assert scale_um == pytest.approx((12.0, 12.0))


def test_tiles_with_stride_and_fine_pixels(predictor: Predictor) -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 1000, (400, 520), dtype=np.uint16)  # 0.06 um/px: 24 x 31.2 um
    fm = predictor.predict_tiles(image, 0.06, stride_um=6.0)
    assert fm.tile_px == 200 and fm.stride_px == 100 and fm.field_px == 200
    assert fm.shape == (3, 4)
    assert fm.boxes()[..., 2].max() <= 400 and fm.boxes()[..., 3].max() <= 520
    # small tiles: the model still reads a full field, centred on the tile, kept inside
    small = predictor.predict_tiles(image, 0.06, tile_um=6.0)
    assert small.tile_px == 100 and small.field_px == 200 and small.shape == (4, 5)
    with pytest.raises(ZFocusError, match="smaller than one tile"):
        predictor.predict_tiles(image[:100], 0.06)


def test_iter_predict_tiles_reports_progress_and_cancels(predictor: Predictor) -> None:
    image = np.random.default_rng(4).random((150, 150)).astype(np.float32)
    gen = predictor.iter_predict_tiles(image, 0.24, batch_size=4)
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            fm = stop.value
            break
    assert events[-1] == (9, 9) and fm.shape == (3, 3)
    cancelled = predictor.iter_predict_tiles(image, 0.24, batch_size=4, cancel=lambda: True)
    with pytest.raises(StopIteration) as stop:
        next(cancelled)
    assert stop.value.value is None


def test_unknown_device_is_a_user_error(model_path: Path) -> None:
    with pytest.raises(ZFocusError, match="device"):
        Predictor.from_file(model_path, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ZFocusError, match="CUDA is not available"):
            Predictor.from_file(model_path, device="cuda")


def test_compile_failure_falls_back_to_eager(model_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        p = Predictor.from_file(model_path, device="cpu", compile=True)
    assert not p.compiled
    assert p.predict(np.random.rand(60, 60), 0.24).softmax.shape == (11,)


def test_construction_leaves_torch_threads_alone_unless_asked(model_path: Path) -> None:
    from napari_zfocus.model.inference import available_cores

    before = torch.get_num_threads()
    # A setting the old default (every available core) would have overwritten.
    mine = 1 if available_cores() != 1 else 2
    asked = mine + 1
    try:
        torch.set_num_threads(mine)
        Predictor.from_file(model_path, device="cpu")
        assert torch.get_num_threads() == mine  # a library object: no global change
        chosen = Predictor.from_file(model_path, device="cpu", num_threads=asked)
        assert torch.get_num_threads() == asked == chosen.num_threads  # explicit opt-in
    finally:
        torch.set_num_threads(before)


def test_cudnn_autotuning_is_on_only_while_predicting() -> None:
    from napari_zfocus.model.inference import _cudnn_benchmark

    before = torch.backends.cudnn.benchmark
    with _cudnn_benchmark():
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark == before  # restored: no lasting global change
