"""Hostile start models and fine-tuning checkpoints: ``zfocus train --from`` refuses them in
one line, before any training, and leaves every file as it was.

The start model goes through the model loader's checks (the same hostile files that
``zfocus predict`` refuses, test_bad_model_files.py); a fine-tuning checkpoint also holds
the best weights so far and the start model's record, damaged here one way at a time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from _bad_models import write_model_files
from _reliability import Snapshot, assert_refused, run_cli
from test_bad_model_files import CASES

from _tiny import write_noise_dataset
from napari_zfocus.model import base_model

RUN = ["--steps", "1", "--batch", "2", "--threads", "1", "--no-progress"]
#: A sample of every kind of bad model file: naive and informed tamperers, an old-format
#: edit, broken weights, impostors.
START_CASES = ["bins_1_to_2_um", "naive_weight_edit", "config_differs_from_tensors",
               "v1_bins_1_to_2_um", "weight_nan", "truncated_half", "pickle_named_zfm",
               "foreign_safetensors", "a_directory"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The valid tiny model the hostile files start from, and a dataset that fits it."""
    return write_model_files(tmp_path_factory.mktemp("bad_start"))


@pytest.mark.parametrize("case", START_CASES)
def test_a_bad_start_model_is_refused_before_training(files, tmp_path, case) -> None:
    make, words = CASES[case]
    bad = make(files, tmp_path / "bad.zfm")
    snap = Snapshot(tmp_path, files["dataset"], files["model"])
    line = assert_refused(run_cli("train", files["dataset"], "--out", tmp_path / "m.zfm",
                                  "--from", bad, *RUN), bad)
    assert words in line, line
    snap.assert_unchanged()
    assert not (tmp_path / "code_ran").exists()


def test_missing_start_model_and_missing_base_are_refused(files, tmp_path, monkeypatch):
    out = tmp_path / "m.zfm"
    line = assert_refused(run_cli("train", files["dataset"], "--out", out, "--from",
                                  tmp_path / "nope.zfm", *RUN), "nope.zfm")
    assert "no such model file to start from" in line
    monkeypatch.setattr(base_model, "BASE_MODEL", tmp_path / "none" / "base_model.zfm")
    line = assert_refused(run_cli("train", files["dataset"], "--out", out, "--from", "base",
                                  *RUN), "base model not installed")
    assert not out.exists()


def test_a_dataset_smaller_than_the_start_models_field_is_named(files, tmp_path) -> None:
    ds = write_noise_dataset(tmp_path / "ds", 2, (11, 30, 30), 5)  # 7.2 um < the 12 um field
    snap = Snapshot(tmp_path)
    line = assert_refused(run_cli("train", ds, "--out", tmp_path / "m.zfm", "--from",
                                  files["model"], *RUN), ds)
    assert "s0.tif: 30 x 30 px" in line and "smaller than the model's field of 12 um" in line
    snap.assert_unchanged()


@pytest.fixture(scope="module")
def fine_tuned(files, tmp_path_factory) -> dict[str, Path]:
    """A fine-tuning run's model and checkpoint (with its best weights and start record)."""
    d = tmp_path_factory.mktemp("bad_ft_ckpt")
    model = d / "m.zfm"
    result = run_cli("train", files["dataset"], "--out", model, "--from", files["model"],
                     "--holdout-min-stacks", "0", "--val-fraction", "0.5", "--keep-best", *RUN)
    assert result.code == 0, result.err
    state = torch.load(model.with_name("m.zfm.ckpt"), weights_only=True)
    assert "best_model" in state and json.loads(state["start_model"])["file"] == "good.zfm"
    return {"model": model, "ckpt": model.with_name("m.zfm.ckpt")}


def _set_json(key: str, value: object):
    return lambda state: state.__setitem__(key, json.dumps(value))


def _best_tensor(state: dict) -> None:
    state["best_model"]["features.0.weight"] = torch.zeros(1)


#: Damage to the entries a fine-tuning checkpoint adds: name -> (edit, words).
EDITS = {
    "best_not_an_object": (_set_json("best", [1]), "best"),
    "best_step_negative": (_set_json("best", {"step": -3, "metrics": {}}), "best step"),
    "best_metric_text": (_set_json("best", {"step": 1, "metrics": {"within_1um": "x"}}),
                         "within_1um"),
    "best_start_metrics_list": (_set_json("best", {"step": 1, "start_metrics": [1]}),
                                "start_metrics"),
    "best_model_wrong_shape": (_best_tensor, "best model state"),
    "best_model_a_list": (lambda s: s.__setitem__("best_model", [1, 2]), "best model state"),
    "start_model_not_json": (lambda s: s.__setitem__("start_model", "{"), "start_model"),
}


@pytest.mark.parametrize("case", sorted(EDITS))
def test_a_damaged_fine_tuning_checkpoint_is_refused_on_resume(files, fine_tuned, tmp_path,
                                                               case) -> None:
    edit, words = EDITS[case]
    model, ckpt = tmp_path / "m.zfm", tmp_path / "m.zfm.ckpt"
    shutil.copy(fine_tuned["model"], model)
    shutil.copy(fine_tuned["ckpt"], ckpt)
    state = torch.load(ckpt, weights_only=True)
    edit(state)
    torch.save(state, ckpt)
    snap = Snapshot(tmp_path, files["dataset"])
    line = assert_refused(run_cli("train", files["dataset"], "--out", model, "--resume",
                                  "--steps", "2", "--threads", "1", "--no-progress"), ckpt)
    assert words in line, line
    snap.assert_unchanged()
