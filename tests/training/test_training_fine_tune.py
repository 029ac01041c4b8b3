"""Fine-tuning from a model: it improves, keeps the best weights, stops early, says what it
validated on, records where it started, and resumes honestly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _defocus_data import LEARNABLE, write_defocus_dataset
from napari_zfocus.data import read_dataset
from napari_zfocus.errors import ModelFileError, ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import load_model, read_model_info
from napari_zfocus.training.loop import CancelToken, TrainConfig, TrainEvent, train

CONFIG = ModelConfig(**LEARNABLE)
#: One core: tiny networks run several times faster single-threaded on a busy machine.
FAST = dict(batch=8, threads=1, checkpoint_every=0, checkpoint_every_s=0, val_fraction=0.34)
#: What ``zfocus train --from`` sets (the recipe's own defaults are tested in the CLI).
FINE = dict(keep_best=True, patience=5, holdout_min_stacks=5)


def run(dataset, out, config=CONFIG, cancel=None, **kw) -> list[TrainEvent]:
    settings = {**FAST, "out": out, "validation_every": 20, **kw}
    return list(train(read_dataset(dataset), config, TrainConfig(**settings), cancel))


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path).net.state_dict()


def validations(events: list[TrainEvent]) -> list[tuple[int, float]]:
    return [(e.step, e.metrics["median_abs_error_um"]) for e in events
            if e.kind == "validation"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Domain A (flipped contrast) with a model trained on it, domain B, two B stacks."""
    d = tmp_path_factory.mktemp("fine_tune")
    files = {
        "A": write_defocus_dataset(d / "A", 6, seed=7, flip=True),
        "B": write_defocus_dataset(d / "B", 6, seed=3),
        "B2": write_defocus_dataset(d / "B2", 2, seed=5),
    }
    events = run(files["A"], d / "a.zfm", steps=100, lr=5e-3, validation_every=0)
    assert events[-1].metrics["median_abs_error_um"] < 1.0  # a model that knows domain A
    files["model_A"] = d / "a.zfm"
    return files


def test_fine_tuning_a_model_of_another_domain_improves_it(data, tmp_path):
    out = tmp_path / "ft.zfm"
    events = run(data["B"], out, steps=60, lr=5e-3, start_from=str(data["model_A"]), **FINE)
    assert events[0].kind == "start" and "starting from a.zfm" in events[0].message
    (first_step, before), *_ = validations(events)
    assert first_step == 0  # the start model, validated before the first step
    final = events[-1]
    assert final.kind == "done"
    info = final.run_info
    assert info["start_validation"]["median_abs_error_um"] == pytest.approx(before)
    # Domain A's model reads B with the wrong sign; a minute's worth of steps fixes it.
    assert before > 2.5, before
    assert final.metrics["median_abs_error_um"] <= 0.5 * before, (before, final.metrics)
    assert info["validation_on"] == "held-out stacks (2)"
    # The model file says where it started and what it validated on.
    meta = load_model(out).metadata["training"]
    record = meta["start_model"]
    assert record["file"] == "a.zfm" and record["spec"] == str(data["model_A"])
    assert record["sha256"] == read_model_info(data["model_A"])[2]["sha256"]
    assert record["format_version"] == 2
    assert meta["validation_on"] == "held-out stacks (2)"
    assert meta["kept_step"] == info["kept_step"] and meta["validation"] == final.metrics


def test_keep_best_writes_the_best_steps_weights(data, tmp_path):
    """A learning rate that wrecks the start model: its own weights stay the best."""
    start = str(data["model_A"])
    kept = run(data["A"], tmp_path / "kept.zfm", steps=10, lr=0.2, validation_every=5,
               start_from=start, **FINE)
    (_, before), *later = validations(kept)
    assert all(error > before for _, error in later), (before, later)
    assert kept[-1].run_info["kept_step"] == 0
    assert kept[-1].run_info["kept"] == "best validation (step 0)"
    assert kept[-1].metrics["median_abs_error_um"] == pytest.approx(before)
    a, b = weights(data["model_A"]), weights(tmp_path / "kept.zfm")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=0)
    # Without keep_best the same run writes its last (worse) weights.
    last = run(data["A"], tmp_path / "last.zfm", steps=10, lr=0.2, validation_every=5,
               start_from=start, holdout_min_stacks=5)
    assert last[-1].run_info["kept_step"] == 10 and last[-1].run_info["kept"] == "last step"
    c = weights(tmp_path / "last.zfm")
    assert any(not torch.equal(a[name], c[name]) for name in a)


def test_patience_stops_early_and_says_so(data, tmp_path):
    events = run(data["A"], tmp_path / "p.zfm", steps=200, lr=0.2, validation_every=2,
                 start_from=str(data["model_A"]), keep_best=True, patience=2,
                 holdout_min_stacks=5)
    final = events[-1]
    assert final.kind == "done" and final.step < 200
    best = final.run_info["kept_step"]
    assert final.step == best + 2 * 2  # two validations, two steps apart, without a better
    assert "stopped early at step" in final.run_info["stopped_early"]
    assert [e.step for e in events if e.kind == "step"][-1] == final.step


def test_two_stacks_train_and_validate_on_the_training_stacks(data, tmp_path):
    events = run(data["B2"], tmp_path / "two.zfm", steps=4, lr=3e-4, validation_every=2,
                 start_from=str(data["model_A"]), **FINE)
    final = events[-1]
    assert final.kind == "done" and final.step == 4
    on = "training stacks (too few to hold out: 2)"
    assert final.run_info["validation_on"] == on and on in events[0].message
    # Validation on seen images cannot pick a best: the last weights, and no calibration.
    assert final.run_info["kept_step"] == 4
    assert "cannot pick the best" in final.run_info["kept"]
    assert final.metrics["n_images"] == 22  # both stacks' 11 slices
    assert "not calibrated" in final.message and final.calibration == {}
    assert load_model(tmp_path / "two.zfm").metadata["training"]["validation_on"] == on


def test_two_stacks_from_scratch_keep_the_old_split(data, tmp_path):
    final = run(data["B2"], tmp_path / "s.zfm", steps=2, lr=1e-3)[-1]
    assert final.run_info["validation_on"] == "held-out stacks (1)"
    assert final.run_info["start_model"] is None and final.run_info["kept"] == "last step"


def test_a_start_model_with_other_settings_is_refused(data, tmp_path):
    other = ModelConfig(**{**LEARNABLE, "bin_um": 0.5})
    with pytest.raises(ZFocusError, match=r"a\.zfm: fine-tuning keeps .*bin_um 1\.0 != 0\.5"):
        run(data["B"], tmp_path / "x.zfm", config=other, steps=1,
            start_from=str(data["model_A"]))
    assert not (tmp_path / "x.zfm").exists()


def test_resume_continues_the_checkpoint_and_refuses_another_start(data, tmp_path):
    out, start = tmp_path / "r.zfm", str(data["model_A"])
    cancel = CancelToken()
    settings = {**FAST, "out": out, "steps": 6, "lr": 1e-3, "validation_every": 2,
                "start_from": start, **FINE}
    for event in train(read_dataset(data["B"]), CONFIG, TrainConfig(**settings), cancel):
        if event.kind == "step" and event.step == 3:
            cancel.cancel()
    rest = run(data["B"], out, steps=6, lr=1e-3, validation_every=2, start_from=start,
               resume=True, **FINE)
    final = rest[-1]
    assert final.kind == "done" and final.step == 6
    assert [e.step for e in rest if e.kind == "validation"] == [4, 6]  # no step-0 again
    assert final.run_info["start_model"]["file"] == "a.zfm"
    assert final.run_info["start_validation"]  # carried over by the checkpoint
    # Another start model cannot be "resumed": the checkpoint started from a.zfm.
    other = tmp_path / "other.zfm"
    run(data["B"], other, steps=1, lr=1e-3, validation_every=0)
    with pytest.raises(ModelFileError, match=r"r\.zfm\.ckpt: its run started from .*a\.zfm"):
        run(data["B"], out, steps=8, lr=1e-3, start_from=str(other), resume=True)
