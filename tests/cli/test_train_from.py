"""``zfocus train --from base|MODEL.zfm``: the start model's network, the few-stack
schedule, the summary, and one-line refusals (exit 2) before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _defocus_data import LEARNABLE, write_defocus_dataset
from _model_files import rewrite_model
from _tiny import write_noise_dataset
from napari_zfocus.cli import main
from napari_zfocus.model import base_model
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import load_model, save_model
from napari_zfocus.model.network import build_network

RUN = ["--steps", "2", "--batch", "4", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A start model (LEARNABLE, untrained), 2- and 6-stack datasets it fits, a tiny one."""
    d = tmp_path_factory.mktemp("train_from")
    torch.manual_seed(0)
    config = ModelConfig(**LEARNABLE)
    return {
        "start": save_model(d / "start.zfm", build_network(config), config,
                            {"training": {"dataset": "simulated mix"}}),
        "two": write_defocus_dataset(d / "two", 2),
        "six": write_defocus_dataset(d / "six", 6),
        "small": write_noise_dataset(d / "small", 2, (11, 20, 20), 5, pixel_size_um=1.0),
    }


def train(capsys, *argv) -> tuple[int, str, str]:
    code = main(["train", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *argv) -> str:
    code, _, err = train(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, (code, err)
    assert lines[0].startswith("zfocus train: error:") and "Traceback" not in err
    return lines[0]


def test_two_stacks_fine_tune_and_say_what_they_validate_on(files, tmp_path, capsys):
    out = tmp_path / "m.zfm"
    code, text, _ = train(capsys, files["two"], "--out", out, "--from", files["start"],
                          "--json", *RUN)
    assert code == 0
    s = json.loads(text.splitlines()[-1])
    assert s["validation_on"] == "training stacks (too few to hold out: 2)"
    assert s["steps"] == 2 and not s["cancelled"] and s["kept_step"] == 2
    assert s["start_model"]["file"] == "start.zfm" and s["start_model"]["trained_on"] == \
        "simulated mix"
    assert set(s["start_validation"]) >= {"median_abs_error_um", "within_1um"}
    model = load_model(out)
    assert model.config == load_model(files["start"]).config  # the start model's network
    meta = model.metadata["training"]
    assert meta["validation_on"] == s["validation_on"]
    assert meta["start_model"]["sha256"] == load_model(files["start"]).info["sha256"]
    tc = meta["train_config"]  # the few-stack schedule, by default
    assert (tc["lr"], tc["photometric"], tc["keep_best"], tc["patience"]) == (3e-4, False,
                                                                              False, 0)


def test_human_summary_says_where_it_started_and_what_it_kept(files, tmp_path, capsys):
    code, text, err = train(capsys, files["six"], "--out", tmp_path / "m.zfm", "--from",
                            files["start"], "--validate-every", "1", "--keep-best", *RUN)
    assert code == 0
    assert "validation on held-out stacks (1)" in err and "step 0: validation" in err
    assert "on held-out stacks (1)" in text
    assert "started from: " in text and "before fine-tuning: median |error|" in text
    assert "model weights: best validation (step" in text


def test_explicit_flags_override_the_fine_tuning_defaults(files, tmp_path, capsys):
    out = tmp_path / "m.zfm"
    code, _, _ = train(capsys, files["six"], "--out", out, "--from", files["start"], "--lr",
                       "0.002", "--photometric-augment", "--keep-best", "--patience", "3",
                       "--holdout-min-stacks", "0", "--bin-um", "1", "--z-range", "-5", "5",
                       "--no-batchnorm", *RUN)  # model flags that agree with the start: fine
    assert code == 0
    tc = load_model(out).metadata["training"]["train_config"]
    assert (tc["lr"], tc["photometric"], tc["keep_best"], tc["patience"],
            tc["holdout_min_stacks"]) == (0.002, True, True, 3, 0)


@pytest.mark.parametrize(("flags", "words"), [
    (["--bin-um", "2"], "--bin-um 2: the start model start.zfm has bin_um 1"),
    (["--z-range", "-10", "10"], "--z-range -10 10: the start model start.zfm has z_min_um -5"),
    (["--pixel-size-um", "0.5"], "--pixel-size-um 0.5: the start model start.zfm has "
                                 "pixel_size_um 1"),
    (["--field-um", "40"], "--field-um 40: the start model start.zfm has field_um 32"),
    (["--batchnorm"], "--batchnorm: the start model start.zfm has batchnorm off"),
    (["--dropout", "0.5"], "--dropout 0.5: the start model start.zfm has dropout 0"),
])
def test_a_model_flag_that_contradicts_the_start_model_is_one_line(files, tmp_path, capsys,
                                                                   flags, words):
    line = refused(capsys, files["two"], "--out", tmp_path / "m.zfm", "--from", files["start"],
                   *flags, *RUN)
    assert words in line, line
    assert not list(tmp_path.iterdir())


def test_a_tampered_start_model_is_one_line(files, tmp_path, capsys):
    bad = rewrite_model(files["start"], tmp_path / "bad.zfm", settings={"bin_um": 0.5})
    line = refused(capsys, files["two"], "--out", tmp_path / "m.zfm", "--from", bad, *RUN)
    assert "bad.zfm" in line and "integrity check failed" in line
    assert not (tmp_path / "m.zfm").exists()


def test_a_dataset_that_cannot_match_the_start_model_is_one_line(files, tmp_path, capsys):
    line = refused(capsys, files["small"], "--out", tmp_path / "m.zfm", "--from",
                   files["start"], *RUN)
    assert str(files["small"]) in line and "smaller than the model's field of 32 um" in line
    assert not (tmp_path / "m.zfm").exists()


def test_from_base_without_the_base_model_is_one_line(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(base_model, "BASE_MODEL", tmp_path / "resources" / "base_model.zfm")
    line = refused(capsys, files["two"], "--out", tmp_path / "m.zfm", "--from", "base", *RUN)
    assert "base model not installed:" in line and "base_model.zfm" in line


def test_from_base_uses_the_packaged_base_model(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(base_model, "BASE_MODEL", files["start"])
    code, text, _ = train(capsys, files["two"], "--out", tmp_path / "m.zfm", "--from", "base",
                          "--json", *RUN)
    assert code == 0
    assert json.loads(text.splitlines()[-1])["start_model"]["spec"] == "base"


def test_resume_wins_over_from_and_refuses_another_start(files, tmp_path, capsys):
    out = tmp_path / "m.zfm"
    assert train(capsys, files["two"], "--out", out, "--from", files["start"], *RUN)[0] == 0
    # --resume alone continues with the run's start and its few-stack schedule.
    more = ["--steps", "3", "--batch", "4", "--threads", "1", "--no-progress", "--json"]
    code, text, _ = train(capsys, files["two"], "--out", out, "--resume", *more)
    assert code == 0
    s = json.loads(text.splitlines()[-1])
    assert s["steps"] == 3 and s["start_model"]["file"] == "start.zfm"
    assert load_model(out).metadata["training"]["train_config"]["lr"] == 3e-4  # few-stack
    # The same start again is fine; another one is refused (it would be ignored).
    more[1] = "4"
    assert train(capsys, files["two"], "--out", out, "--resume", "--from", files["start"],
                 *more)[0] == 0
    other = tmp_path / "other.zfm"
    save_model(other, build_network(ModelConfig(**LEARNABLE)), ModelConfig(**LEARNABLE))
    more[1] = "5"
    line = refused(capsys, files["two"], "--out", out, "--resume", "--from", other, *more)
    assert "m.zfm.ckpt: its run started from" in line and "other.zfm" in line


def test_from_base_features_uses_the_feature_networks_base(files, tmp_path, capsys,
                                                           monkeypatch):
    """The second base sits beside the first; its word names it in the record."""
    import shutil

    base = tmp_path / "resources" / "base_model.zfm"
    base.parent.mkdir()
    shutil.copy(files["start"], base.with_name("base_features_model.zfm"))
    monkeypatch.setattr(base_model, "BASE_MODEL", base)  # only the feature base is there
    code, text, _ = train(capsys, files["two"], "--out", tmp_path / "m.zfm", "--from",
                          "base-features", "--json", *RUN)
    assert code == 0
    assert json.loads(text.splitlines()[-1])["start_model"]["spec"] == "base-features"
    line = refused(capsys, files["two"], "--out", tmp_path / "n.zfm", "--from", "base", *RUN)
    assert "base model not installed:" in line
