"""``zfocus train``: exit codes, outputs, resume rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_zfocus.cli import main
from napari_zfocus.data import Annotation, write_annotations, write_stack
from napari_zfocus.model.io import load_model

# A 32 um field at 1 um/px: the default network (the feature network) at 32 x 32 px.
SMALL = ["--pixel-size-um", "1", "--field-um", "32", "--z-range", "-5", "5",
         "--batch", "4", "--threads", "2", "--no-progress"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Four noisy 11-slice stacks, 40 x 40 px at 1 um/px (content is irrelevant here)."""
    folder = tmp_path_factory.mktemp("cli") / "ds"
    folder.mkdir()
    rng = np.random.default_rng(0)
    annotations = []
    for k in range(4):
        data = rng.integers(900, 1100, size=(11, 40, 40)).astype(np.uint16)
        write_stack(folder / f"s{k}.tif", data, z_step_um=1.0, pixel_size_um=1.0)
        annotations.append(Annotation(f"s{k}.tif", 5, 1.0, 1.0))
    write_annotations(folder, annotations)
    return folder


def test_train_writes_model_and_prints_json_summary(dataset, tmp_path, capsys):
    out = tmp_path / "m.zfm"
    code = main(["train", str(dataset), "--out", str(out), "--steps", "3", "--json",
                 "--val-fraction", "0.25", "--dropout", "0.2", *SMALL])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == str(out) and summary["steps"] == 3 and not summary["cancelled"]
    assert set(summary["validation"]) >= {"median_abs_error_um", "within_1um"}
    loaded = load_model(out)
    assert loaded.config.input_px == 32 and loaded.config.n_bins == 11
    assert loaded.config.dropout == 0.2 and loaded.config.batchnorm  # flag; recommended default
    assert Path(summary["checkpoint"]).is_file()


@pytest.mark.parametrize(("flags", "architecture", "pixel_um"),
                         [(["--architecture", "compact_cnn"], "compact_cnn", 0.6),
                          (["--architecture", "paper_cnn"], "paper_cnn", 1.2),
                          (["--architecture", "feature_mlp", "--pixel-size-um", "0.6"],
                           "feature_mlp", 0.6)])
def test_each_network_gets_its_own_input(dataset, tmp_path, capsys, flags, architecture,
                                         pixel_um):
    """Without model flags each network gets its CPU-budget setting (the stacks are
    40 px at 1 um/px, so only the field is narrowed to fit)."""
    out = tmp_path / "m.zfm"
    code = main(["train", str(dataset), "--out", str(out), "--steps", "1", "--field-um", "36",
                 "--batch", "2", "--threads", "2", "--no-progress", *flags])
    assert code == 0, capsys.readouterr().err
    config = load_model(out).config
    assert (config.architecture, config.pixel_size_um) == (architecture, pixel_um)


def test_the_default_network_is_the_feature_network_at_its_own_input(tmp_path, capsys):
    """No flag at all: the feature network at 0.48 um/px (stacks at 0.4 um/px, 60 px)."""
    from _tiny import write_noise_dataset

    folder = write_noise_dataset(tmp_path / "ds", 3, (11, 60, 60), 5, pixel_size_um=0.4)
    out = tmp_path / "m.zfm"
    code = main(["train", str(folder), "--out", str(out), "--steps", "1", "--field-um", "20",
                 "--batch", "2", "--threads", "2", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    config = load_model(out).config
    assert (config.architecture, config.pixel_size_um) == ("feature_mlp", 0.48)


def test_human_summary_and_resume_keeps_checkpoint_model(dataset, tmp_path, capsys):
    out = tmp_path / "m.zfm"
    assert main(["train", str(dataset), "--out", str(out), "--steps", "2", *SMALL]) == 0
    text = capsys.readouterr().out
    assert "median |error|" in text and "within +/-1 um" in text
    # Resume without repeating the model flags: they come from the checkpoint.
    code = main(["train", str(dataset), "--out", str(out), "--steps", "4", "--resume",
                 "--batch", "4", "--threads", "2", "--no-progress", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 4
    # ...but a flag that contradicts the checkpoint is refused.
    code = main(["train", str(dataset), "--out", str(out), "--steps", "5", "--resume",
                 "--bin-um", "2", *SMALL])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "m.zfm.ckpt" in err and "different model config" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("problem", ["missing", "no_csv", "bad_row"])
def test_bad_dataset_exits_2_with_one_line(tmp_path, capsys, problem):
    folder = tmp_path / "ds"
    if problem != "missing":
        folder.mkdir()
    if problem == "bad_row":
        (folder / "annotations.csv").write_text(
            "stack,focus_index,z_step_um,pixel_size_um\nnope.tif,-3,1.0,0.24\n")
    code = main(["train", str(folder), "--out", str(tmp_path / "m.zfm"), "--steps", "1"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zfocus train: error:") and len(err.splitlines()) == 1
    assert "ds" in err


def test_unwritable_output_exits_2(dataset, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code = main(["train", str(dataset), "--out", str(blocker / "m.zfm"), "--steps", "1", *SMALL])
    assert code == 2
    assert "cannot write" in capsys.readouterr().err


def test_impossible_model_setting_exits_2_with_one_line(dataset, tmp_path, capsys):
    code = main(["train", str(dataset), "--out", str(tmp_path / "m.zfm"), "--steps", "1",
                 "--dropout", "1.5", *SMALL])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "dropout must be in [0, 1)" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.zfm").exists()


def test_stacks_too_coarse_for_the_default_input_are_refused_with_the_way_out(
        dataset, tmp_path, capsys):
    """1 um/px (a 10x objective) is over 2x the default network's 0.48 um/px: refused
    before training, naming the flag that trains a network for it, which then works."""
    out = tmp_path / "m.zfm"
    args = ["train", str(dataset), "--out", str(out), "--steps", "1", "--field-um", "36",
            "--batch", "2", "--threads", "2", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "s0.tif" in err and "2.08x coarser" in err and "--pixel-size-um 1" in err
    assert not out.exists()
    assert main([*args, "--pixel-size-um", "1"]) == 0
    assert load_model(out).config.pixel_size_um == 1.0
