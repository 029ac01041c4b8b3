"""Feature replay: the buffer keeps the newest vectors, refills exactly, and a feature
network trained with it learns, and resumes like an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_training_loop import assert_resume_is_exact, make_dataset, run

from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import load_model
from napari_zfocus.training import feature_replay
from napari_zfocus.training.feature_replay import FeatureReplay, extracts_features


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "tiny")


def _batch(k: int, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``k``: features and targets that name their batch and row."""
    feats = torch.full((n, 3), float(k)) + torch.arange(n)[:, None] / 10
    return feats, torch.full((n, 2), float(k))


def test_the_buffer_keeps_the_newest_vectors() -> None:
    replay = FeatureReplay(capacity=10)
    for k in range(4):  # 16 vectors through 10 slots
        replay.add(*_batch(k))
    assert replay.size == 10
    assert replay.features is not None and replay.targets is not None
    kept = sorted(replay.features[:, 0].tolist())
    expected = sorted([1.2, 1.3] + [2 + i / 10 for i in range(4)] + [3 + i / 10 for i in range(4)])
    np.testing.assert_allclose(kept, expected, rtol=1e-6)
    x, t = replay.sample(np.random.default_rng(0), 32)
    assert x.shape == (32, 3) and t.shape == (32, 2)
    assert torch.equal(x[:, 0].floor(), t[:, 0])  # features stay with their targets


def test_refill_rebuilds_the_buffer_of_an_uninterrupted_run() -> None:
    straight = FeatureReplay(capacity=10)
    for k in range(7):
        straight.add(*_batch(k))
    refilled = FeatureReplay(capacity=10)
    refilled.refill(_batch, lambda x: x, step=7, batch=4)
    assert refilled.added == straight.added and refilled.size == straight.size
    assert straight.features is not None and refilled.features is not None
    assert torch.equal(refilled.features, straight.features)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    assert torch.equal(straight.sample(rng_a, 8)[0], refilled.sample(rng_b, 8)[0])


def test_only_fixed_feature_networks_replay() -> None:
    from napari_zfocus.model.network import build_network

    features = ModelConfig.for_architecture("feature_mlp", field_um=20.0, fc_features=16)
    assert extracts_features(build_network(features))
    assert not extracts_features(build_network(ModelConfig.compact()))


def _feature_model() -> ModelConfig:
    return ModelConfig.for_architecture(
        "feature_mlp", pixel_size_um=1.0, field_um=32.0, z_min_um=-5.0, z_max_um=5.0,
        fc_features=64, dropout=0.2)


def test_a_feature_network_learns_the_tiny_world(dataset, tmp_path):
    events = run(dataset, tmp_path / "f.zfm", model=_feature_model(), steps=60, batch=16,
                 validation_every=60)
    assert events[-1].kind == "done"
    final = events[-1].metrics
    # 11 bins: guessing gets ~3/11 within +/-1 um.
    assert final["within_1um"] >= 0.7, final
    loaded = load_model(events[-1].model_path)
    assert loaded.config.architecture == "feature_mlp"


def test_resume_replays_exactly_like_an_uninterrupted_run(dataset, tmp_path, monkeypatch):
    # A buffer smaller than the run, so the resumed run must rebuild a wrapped ring.
    monkeypatch.setattr(feature_replay, "REPLAY_CAPACITY", 20)
    assert_resume_is_exact(dataset, _feature_model(), tmp_path, steps=8, stop_at=5)
