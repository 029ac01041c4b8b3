"""Training loop: learning, exact resume, cancel, split by stack, checkpoint safety."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from napari_zfocus.data import Annotation, read_dataset, write_annotations, write_stack
from napari_zfocus.errors import ModelFileError, ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import load_model
from napari_zfocus.training.checkpoint import checkpoint_path, load_checkpoint
from napari_zfocus.training.dataset_cache import split_by_stack
from napari_zfocus.training.loop import (
    CancelToken,
    TrainConfig,
    TrainEvent,
    lr_at,
    soft_targets,
    train,
)

N_SLICES = 11  # z = -5 .. +5 um around focus


def synthetic_stack(seed: int, focus_index: int, size: int = 48) -> np.ndarray:
    """Dots whose blur grows with |z| and whose contrast flips sign across focus.

    Bright-field in miniature: a cell is dark below focus and bright above it, and sharp
    only in focus, so one image tells both how far and which side.
    """
    rng = np.random.default_rng(seed)
    dots = np.zeros((size, size))
    ys, xs = rng.integers(0, size, (2, 40))
    dots[ys, xs] = 1.0
    planes = []
    for i in range(N_SLICES):
        z = float(i - focus_index)
        img = gaussian_filter(dots, 0.6 + 0.45 * abs(z), mode="wrap")
        img = img / img.max() * (1.0 if z >= 0 else -1.0) * (0.3 + 0.1 * abs(z))
        img = 1000 + 800 * img + rng.normal(0, 8, img.shape)
        planes.append(img)
    return np.clip(np.stack(planes), 0, 65535).astype(np.uint16)


def make_dataset(folder: Path, n_stacks: int = 8) -> Path:
    """A tiny dataset folder in the interchange format (1 um/px, 1 um steps)."""
    folder.mkdir(parents=True, exist_ok=True)
    annotations = []
    for k in range(n_stacks):
        focus = 5 + (k % 3) - 1  # 4..6: some slices fall outside +/-5 um and are skipped
        name = f"stack_{k:02d}.tif"
        write_stack(folder / name, synthetic_stack(k, focus), z_step_um=1.0, pixel_size_um=1.0)
        annotations.append(Annotation(name, focus, 1.0, 1.0))
    write_annotations(folder, annotations)
    return folder


def tiny_model() -> ModelConfig:
    return ModelConfig(
        pixel_size_um=1.0, field_um=32.0, z_min_um=-5.0, z_max_um=5.0,
        conv_features=(8, 16), kernel_size=5, pool_size=4, fc_features=64, dropout=0.2,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "tiny")


def run(dataset, out, cancel=None, model: ModelConfig | None = None, **kw) -> list[TrainEvent]:
    """Train ``model`` (default :func:`tiny_model`) with small settings; ``kw`` override."""
    settings = dict(out=out, steps=6, batch=8, lr=2e-3, val_fraction=0.25, threads=2,
                    validation_every=0, checkpoint_every=0, checkpoint_every_s=0)
    settings.update(kw)
    return list(train(read_dataset(dataset), model or tiny_model(), TrainConfig(**settings),
                      cancel))


def test_tiny_model_learns_well_above_chance(dataset, tmp_path):
    events = run(dataset, tmp_path / "m.zfm", steps=150, batch=16, validation_every=75)
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("step") == 150
    vals = [e for e in events if e.kind == "validation"]
    assert [v.step for v in vals] == [75, 150]
    final = events[-1].metrics
    # 11 bins: guessing gets ~3/11 within +/-1 um and a median error of ~3 um.
    assert final["within_1um"] >= 0.7, final
    assert final["median_abs_error_um"] <= 1.0, final
    losses = [e.loss for e in events if e.kind == "step"]
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:10])
    loaded = load_model(events[-1].model_path)
    assert loaded.config == tiny_model()
    assert loaded.metadata["training"]["steps"] == 150


def test_events_are_plain_picklable_data(dataset, tmp_path):
    events = run(dataset, tmp_path / "m.zfm", steps=3)
    for e in events:
        back = pickle.loads(pickle.dumps(e))
        assert back == e
        assert not any(isinstance(v, torch.Tensor) for v in vars(e).values())
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == [1, 2, 3]
    assert steps[-1].progress == pytest.approx(1.0)
    assert all(e.images_per_s > 0 and e.lr > 0 for e in steps)


def assert_resume_is_exact(dataset, model: ModelConfig, tmp_path, steps: int,
                           stop_at: int) -> None:
    """A run cancelled after ``stop_at`` steps and resumed ends exactly like one that ran
    through: the same losses step by step, the same weights."""
    settings = dict(steps=steps, batch=8, lr=2e-3, val_fraction=0.25, threads=2,
                    validation_every=0, checkpoint_every=0, checkpoint_every_s=0)
    full = list(train(read_dataset(dataset), model,
                      TrainConfig(out=tmp_path / "full.zfm", **settings)))
    out = tmp_path / "part.zfm"
    cancel = CancelToken()
    part = []
    for e in train(read_dataset(dataset), model, TrainConfig(out=out, **settings), cancel):
        part.append(e)
        if e.kind == "step" and e.step == stop_at:
            cancel.cancel()
    assert part[-1].kind == "cancelled" and part[-1].step == stop_at
    rest = list(train(read_dataset(dataset), model,
                      TrainConfig(out=out, resume=True, **settings)))
    assert rest[-1].kind == "done"
    assert [e.step for e in rest if e.kind == "step"] == list(range(stop_at + 1, steps + 1))
    resumed_losses = [e.loss for e in part + rest if e.kind == "step"]
    full_losses = [e.loss for e in full if e.kind == "step"]
    np.testing.assert_allclose(resumed_losses, full_losses, rtol=1e-5)
    a = load_model(tmp_path / "full.zfm").net.state_dict()
    b = load_model(out).net.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_resume_continues_exactly_like_an_uninterrupted_run(dataset, tmp_path):
    assert_resume_is_exact(dataset, tiny_model(), tmp_path, steps=6, stop_at=3)


def test_cancel_leaves_usable_checkpoint_and_model(dataset, tmp_path):
    out = tmp_path / "c.zfm"
    cancel = CancelToken()
    cancel.cancel()  # before the first step: still a valid (untrained) model and checkpoint
    events = run(dataset, out, cancel=cancel, steps=100)
    last = events[-1]
    assert last.kind == "cancelled" and last.step == 0
    assert Path(last.model_path) == out and Path(last.checkpoint_path) == checkpoint_path(out)
    ck = load_checkpoint(last.checkpoint_path)
    assert ck["step"] == 0 and ck["model_config"] == tiny_model()
    net = load_model(out).net
    x = torch.randn(2, 1, 32, 32)
    assert net(x).shape == (2, 11)


def test_resume_refuses_a_different_model_config(dataset, tmp_path):
    out = tmp_path / "r.zfm"
    run(dataset, out, steps=1)
    other = tiny_model()
    other.bin_um = 2.0
    with pytest.raises(ModelFileError, match=r"r\.zfm\.ckpt: .*different model config.*bin_um"):
        list(train(read_dataset(dataset), other,
                   TrainConfig(out=out, steps=2, resume=True, threads=2)))


def test_resume_without_checkpoint_is_a_clear_error(dataset, tmp_path):
    with pytest.raises(ModelFileError, match="no checkpoint"):
        run(dataset, tmp_path / "none.zfm", resume=True)


def test_checkpoint_loading_refuses_pickled_objects(tmp_path):
    bad = tmp_path / "evil.ckpt"

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"format": "napari-zfocus-checkpoint", "x": Payload()}, bad)
    with pytest.raises(ModelFileError, match="evil.ckpt: not a readable checkpoint"):
        load_checkpoint(bad)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="junk.ckpt"):
        load_checkpoint(tmp_path / "junk.ckpt")


def test_split_is_by_stack_and_seeded():
    ann = [Annotation(f"s{i}.tif", 5, 1.0, 1.0) for i in range(20)]
    train_a, val_a = split_by_stack(ann, 0.25, seed=3)
    assert len(val_a) == 5 and len(train_a) == 15
    assert not {a.stack for a in train_a} & {a.stack for a in val_a}
    assert split_by_stack(ann, 0.25, seed=3) == (train_a, val_a)
    assert split_by_stack(ann, 0.25, seed=4)[1] != val_a
    # Tiny sets: at least one stack on each side, or none held out.
    assert [len(p) for p in split_by_stack(ann[:2], 0.1, seed=0)] == [1, 1]
    assert [len(p) for p in split_by_stack(ann[:1], 0.5, seed=0)] == [1, 0]


def test_validation_stacks_never_reach_training(dataset, tmp_path):
    events = run(dataset, tmp_path / "v.zfm", steps=2)
    meta = load_model(tmp_path / "v.zfm").metadata["training"]
    assert meta["train_stacks"] == 6 and len(meta["val_stacks"]) == 2
    assert "2 validation stacks" in events[0].message


def test_soft_labels_and_schedule():
    cfg = tiny_model()
    t = soft_targets(torch.tensor([0.0, 5.0, 40.0]), cfg, 0.5)
    assert torch.allclose(t.sum(1), torch.ones(3))
    assert int(t[0].argmax()) == 5 and int(t[1].argmax()) == 10 and int(t[2].argmax()) == 10
    assert 0.5 < float(t[0, 5]) < 0.9  # mass shared with the neighbouring bins
    hard = soft_targets(torch.tensor([-5.0]), cfg, 0.0)
    assert float(hard[0, 0]) == 1.0
    tc = TrainConfig(steps=100, lr=1e-3, warmup_fraction=0.1, final_lr_fraction=0.0)
    assert lr_at(0.0, tc) < 1e-4 and lr_at(0.1, tc) == pytest.approx(1e-3)
    assert lr_at(0.55, tc) == pytest.approx(5e-4) and lr_at(1.0, tc) == pytest.approx(0.0)


def test_bad_settings_and_outputs_raise_zfocus_errors(dataset, tmp_path):
    with pytest.raises(ZFocusError, match="budget"):
        list(train(read_dataset(dataset), tiny_model(), TrainConfig(out=tmp_path / "x.zfm")))
    with pytest.raises(ZFocusError, match="is a folder"):
        run(dataset, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ZFocusError, match="cannot write"):
        run(dataset, blocker / "m.zfm")
    big = tiny_model()
    big.field_um = 64.0
    with pytest.raises(ZFocusError, match="smaller than the model's field"):
        list(train(read_dataset(dataset), big, TrainConfig(out=tmp_path / "b.zfm", steps=1)))


def test_training_inputs_match_inference_preprocessing(tmp_path):
    """A cached training crop equals what prepare() makes of the same raw field."""
    from napari_zfocus.model.preprocess import normalise, prepare
    from napari_zfocus.training.dataset_cache import load_stack_cached, zscore_images

    raw = synthetic_stack(7, 5, size=96)  # 0.5 um/px; the model sees 1 um/px
    folder = tmp_path / "half"
    folder.mkdir()
    write_stack(folder / "s.tif", raw, z_step_um=1.0, pixel_size_um=0.5)
    write_annotations(folder, [Annotation("s.tif", 5, 1.0, 0.5)])
    ds = read_dataset(folder)
    cached = load_stack_cached(ds, ds.annotations[0], tiny_model())
    assert cached.data.shape == (N_SLICES, 48, 48) and cached.data.dtype == np.float16
    np.testing.assert_allclose(cached.z_um, np.arange(N_SLICES) - 5.0)
    top, left, n = 8, 16, 32
    mine = zscore_images(cached.data[3, top : top + n, left : left + n][None].astype(np.float32))
    field = raw[3, 2 * top : 2 * (top + n), 2 * left : 2 * (left + n)]
    theirs = prepare(field, 0.5, tiny_model())[0, 0].numpy()
    np.testing.assert_allclose(mine[0], theirs, atol=2e-3)  # float16 cache: ~1e-3
    x = np.random.default_rng(0).normal(5, 3, (4, 9, 9)).astype(np.float32)
    x[1] = 7.0  # constant image -> zeros, not NaN
    ref = normalise(torch.from_numpy(x.copy())[:, None])[:, 0].numpy()
    np.testing.assert_allclose(zscore_images(x), ref, atol=1e-5)


def test_the_model_file_is_calibrated_on_the_validation_stacks(tmp_path):
    # 24 stacks, 40 % held out: ~100 validation images (calibration needs 50) and ~150
    # training images (an OOD reference of 12 features needs 120).
    big = make_dataset(tmp_path / "big", n_stacks=24)
    out = tmp_path / "m.zfm"
    done = run(big, out, val_fraction=0.4)[-1]
    assert done.kind == "done" and done.message.startswith("calibrated: temperature")
    # 10 validation stacks are too few for a confidence that holds on new stacks: it says so
    assert "Only 10 validation stacks" in done.message and "Calibrate tab" in done.message
    cal = done.calibration
    assert cal["source"] == "validation stacks" and cal["images"] >= 50
    assert cal["ood_reference_images"] >= 120 and 0 <= cal["flagged"] <= 1
    loaded = load_model(out)
    assert loaded.calibration is not None and loaded.calibration.ood is not None
    assert loaded.calibration.temperature == pytest.approx(cal["temperature"])
    assert loaded.calibration.fitted["images"] == cal["images"]


def test_too_few_validation_images_leave_the_model_uncalibrated(dataset, tmp_path):
    done = run(dataset, tmp_path / "m.zfm")[-1]  # 2 validation stacks, ~20 images
    assert done.calibration == {} and done.message.startswith("not calibrated")
    assert load_model(tmp_path / "m.zfm").calibration is None


def test_ood_reference_features_are_those_of_the_network_input(tmp_path):
    """The training slices' spectra are taken of what prepare() gives the network."""
    from napari_zfocus.model.ood import spectral_features
    from napari_zfocus.model.preprocess import prepare
    from napari_zfocus.training.calibration_fit import reference_features
    from napari_zfocus.training.dataset_cache import load_training_data

    ds = read_dataset(make_dataset(tmp_path / "ds", n_stacks=2))
    data = load_training_data(ds, ds.annotations, tiny_model())
    feats, z, stacks = reference_features(data)
    assert len(feats) == len(z) == len(stacks) == len(data)
    s_idx, z_idx = data.index[-1]
    a = ds.annotations[s_idx]
    x = prepare(ds.open_stack(a).slice(int(z_idx)), a.pixel_size_um, tiny_model())
    np.testing.assert_allclose(feats[-1], spectral_features(x)[0], atol=0.02)
    assert z[-1] == data.stacks[s_idx].z_um[z_idx] and stacks[-1] == s_idx
    thinned, _, _ = reference_features(data, max_images=5)
    assert len(thinned) == 5


def test_a_failing_calibration_never_costs_the_model(dataset, tmp_path, monkeypatch):
    import napari_zfocus.training.trainer as trainer_module

    def fail(*args, **kwargs):
        raise ZFocusError("calibration: the model's output or the true z is not finite")

    monkeypatch.setattr(trainer_module, "MIN_CALIBRATION_IMAGES", 1)
    monkeypatch.setattr(trainer_module, "calibrate_network", fail)
    done = run(dataset, tmp_path / "m.zfm")[-1]
    assert done.kind == "done" and done.message.startswith("not calibrated: calibration:")
    assert load_model(tmp_path / "m.zfm").calibration is None
