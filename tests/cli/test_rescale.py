"""``zfocus rescale``: a model's distance scale from unannotated stacks, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from _tiny import write_untrained_model
from napari_zfocus.cli import main
from napari_zfocus.data import write_stack
from napari_zfocus.model.inference import Predictor
from napari_zfocus.model.io import load_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("rescale")
    rng = np.random.default_rng(0)
    stacks = [d / f"s{i}.tif" for i in range(3)]
    for path in stacks:
        write_stack(path, rng.integers(100, 4000, (25, 56, 60), dtype=np.uint16),
                    z_step_um=1.0, pixel_size_um=0.24)
    unknown = d / "no_step.tif"  # a plain TIFF: no spacing, no pixel size
    tifffile.imwrite(unknown, rng.integers(100, 4000, (25, 56, 60), dtype=np.uint16))
    return {"model": write_untrained_model(d / "tiny.zfm"), "stacks": stacks,
            "no_step": unknown, "dir": d}


def _reads_with_gain(gain: float):
    """``Predictor.predict_batch`` of a model that reads ``gain`` x the true defocus."""
    def predict_batch(self, images, pixel_size_um, **_):
        focus = len(images) / 2 - 0.3
        return [SimpleNamespace(z_um=float(np.clip(gain * (i - focus), -15, 15)) / self.gain)
                for i in range(len(images))]
    return predict_batch


def test_rescale_writes_a_model_that_reads_true_distances(setup, monkeypatch, capsys):
    out = setup["dir"] / "rescaled.zfm"
    with monkeypatch.context() as m:
        m.setattr(Predictor, "predict_batch", _reads_with_gain(1.25))
        assert main(["rescale", str(setup["model"]), *map(str, setup["stacks"]),
                     "--out", str(out), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert facts["gain"] == pytest.approx(1.25, abs=1e-3) == facts["measured_gain"]
    assert facts["previous_gain"] == 1.0
    assert facts["stacks"] == facts["stacks_fitted"] == 3 and facts["applied"] is True
    assert 0 < facts["standard_error"] < facts["threshold"] < 0.25
    assert [s["stack"] for s in facts["per_stack"]] == list(map(str, setup["stacks"]))
    assert load_model(out).distance_scale.gain == pytest.approx(1.25, abs=1e-3)
    # The real network's readings through the rescaled file: divided by the gain.
    image = np.random.default_rng(5).integers(100, 4000, (56, 60)).astype(np.uint16)
    before = Predictor.from_file(setup["model"]).predict(image, 0.24).z_um
    after = Predictor.from_file(out).predict(image, 0.24).z_um
    assert after == pytest.approx(before / facts["gain"])
    # Rescaling the rescaled model again measures afresh: it does not compound.
    again = setup["dir"] / "again.zfm"
    with monkeypatch.context() as m:
        m.setattr(Predictor, "predict_batch", _reads_with_gain(0.7))
        assert main(["rescale", str(out), str(setup["stacks"][0]), "--out", str(again)]) == 0
    assert "reads 0.70x the true distance on 1 of 1 stacks" in capsys.readouterr().out
    assert load_model(again).distance_scale.gain == pytest.approx(0.7, abs=1e-3)
    # The same setting: a gain within the stacks' scatter of 1 leaves the readings as trained.
    with monkeypatch.context() as m:
        m.setattr(Predictor, "predict_batch", _reads_with_gain(1.03))
        assert main(["rescale", str(setup["model"]), str(setup["stacks"][0]), "--out",
                     str(again), "--overwrite"]) == 0
    line = capsys.readouterr().out
    assert "reads 1.03x" in line and "no measurable change of setting" in line
    assert load_model(again).distance_scale.gain == 1.0


def test_stacks_the_model_cannot_read_are_refused_and_nothing_written(setup, monkeypatch,
                                                                     capsys):
    out = setup["dir"] / "never.zfm"
    with monkeypatch.context() as m:
        m.setattr(Predictor, "predict_batch", _reads_with_gain(-1.0))
        code = main(["rescale", str(setup["model"]), str(setup["stacks"][0]), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "no stack gave a distance scale" in err and "do not increase" in err
    with monkeypatch.context() as m:
        m.setattr(Predictor, "predict_batch", _reads_with_gain(3.0))
        assert main(["rescale", str(setup["model"]), str(setup["stacks"][0]),
                     "--out", str(out)]) == 2
    assert "fine-tune" in capsys.readouterr().err
    assert not out.exists()


def test_a_stack_without_its_spacing_is_named(setup, capsys):
    out = setup["dir"] / "never.zfm"
    assert main(["rescale", str(setup["model"]), str(setup["no_step"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no_step.tif" in err and "z-step" in err and not out.exists()


def test_out_is_checked_before_any_work(setup, capsys):
    victim = setup["dir"] / "notes.txt"
    victim.write_text("my notes")
    assert main(["rescale", str(setup["model"]), str(setup["stacks"][0]),
                 "--out", str(victim)]) == 2
    assert "not a napari-zfocus model file" in capsys.readouterr().err
    assert victim.read_text() == "my notes"
    existing = setup["dir"] / "existing.zfm"
    existing.write_bytes(setup["model"].read_bytes())
    assert main(["rescale", str(setup["model"]), str(setup["stacks"][0]),
                 "--out", str(existing)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == setup["model"].read_bytes()
