"""``zfocus calibrate`` and the calibration keys of ``zfocus eval --json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _tiny import write_noise_dataset, write_untrained_model
from napari_zfocus.cli import main
from napari_zfocus.model.io import load_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("calibrate")
    # 12 stacks x 11 slices within -5..+5 um: 132 images, enough for an OOD reference
    return {"model": write_untrained_model(d / "tiny.zfm"),
            "dataset": write_noise_dataset(d / "ds", 12, (13, 56, 60), focus_index=6),
            "small": write_noise_dataset(d / "small", 2, (13, 56, 60), focus_index=6, seed=1),
            "dir": d}


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def calibrated(setup) -> Path:
    out = setup["dir"] / "calibrated.zfm"
    assert main(["calibrate", str(setup["model"]), str(setup["dataset"]), "--out", str(out),
                 "--json"]) == 0
    return out


def test_calibrate_writes_a_calibrated_copy(setup, capsys) -> None:
    out = setup["dir"] / "calibrated_again.zfm"
    assert main(["calibrate", str(setup["model"]), str(setup["dataset"]), "--out", str(out),
                 "--json"]) == 0
    facts = _last_json(capsys)
    assert facts["model"] == str(out) and facts["images"] == 132
    assert facts["ood_reference_images"] == 132 and 0 <= facts["flagged"] <= 1
    assert facts["temperature"] > 0 and facts["ece_in_sample"] <= facts["ece_uncalibrated"]
    loaded = load_model(out)
    assert loaded.calibration is not None and loaded.calibration.ood is not None
    assert loaded.calibration.fitted["source"] == f"dataset {setup['dataset']}"


def test_eval_json_reports_ece_flagged_and_whether_calibrated(setup, calibrated,
                                                             capsys) -> None:
    out = calibrated
    capsys.readouterr()
    assert main(["eval", str(out), str(setup["dataset"]), "--json", "--no-progress"]) == 0
    d = _last_json(capsys)
    assert d["calibrated"] is True and d["n_images"] == 132
    assert 0 <= d["ece"] <= 1 and 0 <= d["flagged"] <= 1 and "argmax" in d
    assert main(["eval", str(setup["model"]), str(setup["dataset"]), "--json",
                 "--no-progress"]) == 0
    plain = _last_json(capsys)
    assert plain["calibrated"] is False and 0 <= plain["ece"] <= 1
    assert main(["eval", str(setup["model"]), str(setup["dataset"]), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "ECE (+/-1 um)" in text and "uncalibrated model" in text


def test_calibrate_refuses_bad_outputs_and_too_few_images(setup, capsys) -> None:
    model, ds = str(setup["model"]), str(setup["dataset"])
    existing = setup["dir"] / "exists.zfm"
    write_untrained_model(existing)
    assert main(["calibrate", model, ds, "--out", str(existing)]) == 2
    assert "a model already exists; pass --overwrite" in capsys.readouterr().err
    text_file = setup["dir"] / "notes.txt"
    text_file.write_text("mine")
    assert main(["calibrate", model, ds, "--out", str(text_file), "--overwrite"]) == 2
    assert "is not a napari-zfocus model file" in capsys.readouterr().err
    assert text_file.read_text() == "mine"
    small = setup["dir"] / "small.zfm"
    assert main(["calibrate", model, str(setup["small"]), "--out", str(small)]) == 2
    err = capsys.readouterr().err
    assert "at least 50 images" in err and len(err.strip().splitlines()) == 1
    assert not small.exists()


def test_predict_says_what_the_confidence_means(setup, calibrated, capsys) -> None:
    stack = next(p for p in sorted(setup["dataset"].iterdir()) if p.suffix == ".tif")
    for model, meaning in ((setup["model"], "uncalibrated: mass within +/-1 bin"),
                           (calibrated, "calibrated: P(|error| <= 1 um)")):
        assert main(["predict", str(model), str(stack), "--slice", "6"]) == 0
        assert meaning in capsys.readouterr().out
