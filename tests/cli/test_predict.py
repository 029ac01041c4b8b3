"""``zfocus predict``: JSON contract, pixel size from metadata, exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from _tiny import TINY
from napari_zfocus.cli import main
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import save_model
from napari_zfocus.model.network import build_network

KEYS = {"z_um", "confidence", "bimodal", "softmax", "z_argmax_um", "entropy", "bin_centres_um"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    config = ModelConfig(**TINY)
    model = save_model(d / "tiny.zfm", build_network(config), config)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4000, (64, 70), dtype=np.uint16)
    with_px = d / "with_px.tif"
    tifffile.imwrite(
        with_px, image, imagej=True, resolution=(1 / 0.24, 1 / 0.24), metadata={"unit": "um"}
    )
    no_px = d / "no_px.tif"
    tifffile.imwrite(no_px, image)
    stack = d / "stack.tif"
    tifffile.imwrite(
        stack,
        rng.integers(0, 4000, (5, 64, 70), dtype=np.uint16),
        imagej=True,
        resolution=(1 / 0.24, 1 / 0.24),
        metadata={"unit": "um", "spacing": 1.0, "axes": "ZYX"},
    )
    not_image = d / "notes.tif"
    not_image.write_text("not a tiff\n")
    bad_model = d / "bad.zfm"
    bad_model.write_bytes(b"\x80\x04garbage")
    return {
        "model": model,
        "with_px": with_px,
        "no_px": no_px,
        "stack": stack,
        "not_image": not_image,
        "bad_model": bad_model,
    }


def _json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_predict_json_keys_with_pixel_size_from_metadata(files, capsys) -> None:
    assert main(["predict", str(files["model"]), str(files["with_px"]), "--json"]) == 0
    d = _json(capsys.readouterr().out)
    assert set(d) >= KEYS
    assert d["pixel_size_um"] == pytest.approx(0.24)
    assert len(d["softmax"]) == len(d["bin_centres_um"]) == 11
    assert sum(d["softmax"]) == pytest.approx(1.0)
    assert isinstance(d["bimodal"], bool)


def test_pixel_size_flag_and_stack_slice(files, capsys) -> None:
    assert main(["predict", str(files["model"]), str(files["no_px"]), "--pixel-size", "0.24"]) == 0
    assert "confidence" in capsys.readouterr().out
    assert (
        main(["predict", str(files["model"]), str(files["stack"]), "--slice", "3", "--json"]) == 0
    )
    assert set(_json(capsys.readouterr().out)) >= KEYS


@pytest.mark.parametrize(
    ("image", "model", "extra", "message"),
    [
        ("no_px", "model", [], "pixel size unknown"),
        ("stack", "model", [], "--slice"),
        ("not_image", "model", ["--pixel-size", "0.24"], "not a readable TIFF"),
        ("with_px", "bad_model", [], "refusing"),
        ("with_px", "model", ["--pixel-size", "-1"], "positive"),
        ("missing", "model", [], "no such file"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, capsys, image, model, extra, message) -> None:
    img = files.get(image, files["model"].parent / "missing.tif")
    assert main(["predict", str(files[model]), str(img), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
