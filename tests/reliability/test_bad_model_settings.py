"""Bad model settings: every value ModelConfig, the devices or a model computes is checked.

The companion of test_bad_model_files.py (hostile model files): here the configuration
values a script or the widget could pass to :class:`ModelConfig`, unknown or absent
devices in every command, re-sealed models that compute NaN or infinite output (refused
on load, in predict and eval, counted as a failure by the live loop), and new models
whose z range is not whole bins.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from _bad_models import _state, write_model_files
from _reliability import Snapshot, assert_refused, run_cli

from _model_files import rewrite_model
from _tiny import TINY
from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.device import check_device, resolve_device
from napari_zfocus.model.io import load_model, save_model
from napari_zfocus.model.network import build_network


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A valid tiny model (current and version 1 format), an image and a dataset."""
    return write_model_files(tmp_path_factory.mktemp("bad_models"))


#: Bad values given to the constructor (what a script or the widget could pass).
BAD_SETTINGS = {
    "pool_size": [0, -1, 2.5, "5", True],
    "kernel_size": [0, -10, 100],
    "fc_features": [0, 10**9],
    "conv_features": [(), (4,) * 9, "32", (0, 8), (True, 8)],
    "bin_um": [0.0, 1e-7, -1.0, float("inf")],
    "z_min_um": [-1e9, float("nan")],
    "pixel_size_um": [0.0, float("nan"), None],
    "field_um": [-60.0],
    "dropout": [1.0, -0.5],
    "batchnorm": [1, "true"],
    "architecture": ["vgg"],
    "normalisation": ["minmax"],
    "extra": [None],
}


@pytest.mark.parametrize(
    ("field", "value"),
    [(k, v) for k, values in BAD_SETTINGS.items() for v in values],
    ids=lambda x: repr(x)[:20],
)
def test_model_config_refuses_bad_value_naming_the_field(field: str, value) -> None:
    with pytest.raises(ZFocusError) as err:
        ModelConfig(**dict(TINY, **{field: value}))
    message = str(err.value)
    assert "\n" not in message
    assert field in message or "bins" in message or "px" in message, message


def test_model_config_messages_say_what_is_allowed() -> None:
    with pytest.raises(ZFocusError, match=r"^pool_size must be an integer >= 1 and <= 32, got 0$"):
        ModelConfig(pool_size=0)
    with pytest.raises(ZFocusError, match="z range is empty"):
        ModelConfig(z_min_um=3.0, z_max_um=3.0)


@pytest.mark.parametrize("bad", [[], "config", None, 3])
def test_model_config_from_dict_refuses_non_objects(bad) -> None:
    with pytest.raises(ZFocusError, match="JSON object"):
        ModelConfig.from_dict(bad)


def test_defaults_and_recommended_are_valid_and_round_trip() -> None:
    for config in (ModelConfig(), ModelConfig.recommended(), ModelConfig(**TINY)):
        config.validate()
        again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        assert again == config
    # JSON integers for float settings are fine (and normalised).
    c = ModelConfig.from_dict(dict(ModelConfig(**TINY).to_dict(), field_um=12, kernel_size=10.0))
    assert isinstance(c.field_um, float) and isinstance(c.kernel_size, int)


# ------------------------------------------------------------------ devices


@pytest.mark.parametrize("text", ["bogus", "gpu", "cuda:x", "cpu:0", "cuda:-1", "", 7,
                                  "cuda:99999"])
def test_unknown_device_is_one_line_naming_the_setting(text) -> None:
    with pytest.raises(ZFocusError, match=r"^--device .*(auto, cpu|cuda)") as err:
        resolve_device(text, "--device")
    assert "\n" not in str(err.value)


def test_cuda_device_past_the_machine_is_refused() -> None:
    if torch.cuda.is_available():
        with pytest.raises(ZFocusError, match="cuda:0..cuda:"):
            resolve_device(f"cuda:{torch.cuda.device_count()}", "device")
    else:
        with pytest.raises(ZFocusError, match="CUDA is not available"):
            resolve_device("cuda", "device")
        with pytest.raises(ZFocusError, match="CUDA is not available"):
            check_device("cuda:0", "device")


def test_known_devices_resolve() -> None:
    assert resolve_device("CPU ", "device") == torch.device("cpu")
    assert resolve_device(None, "device").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert check_device("auto") == "auto" and check_device(torch.device("cpu")) == "cpu"


@pytest.mark.parametrize("command", ["predict", "eval", "bench"])
def test_bogus_device_is_one_line_in_every_command(files, command: str) -> None:
    argv = {
        "predict": ("predict", files["model"], files["image"], "--pixel-size", "0.24"),
        "eval": ("eval", files["model"], files["dataset"], "--no-progress"),
        "bench": ("bench", files["model"], "--frames", "1", "--allocator", "default"),
    }[command]
    assert_refused(run_cli(*argv, "--device", "bogus"), "device", "bogus")


# ------------------------------------------------------------------ models that compute NaN


def _bn_model(d: Path) -> Path:
    torch.manual_seed(1)
    config = ModelConfig(**dict(TINY, batchnorm=True))
    return save_model(d / "bn.zfm", build_network(config).eval(), config)


def test_negative_batchnorm_variance_is_refused_on_load(files, tmp_path: Path) -> None:
    """A re-sealed file whose BatchNorm variance is negative computes NaN for every image
    (it answered z = -3.5 um, confidence 0.18): refused before any prediction."""
    good = _bn_model(tmp_path)
    sd = _state(good)
    name = next(k for k in sd if k.endswith("running_var"))
    sd[name] = -torch.ones_like(sd[name])
    bad = rewrite_model(good, tmp_path / "bad.zfm", tensors=sd, reseal="v2")
    snap = Snapshot(tmp_path, files["image"])
    line = assert_refused(run_cli("predict", bad, files["image"], "--pixel-size", "0.24"),
                          bad, name)
    assert "negative" in line
    assert_refused(run_cli("eval", bad, files["dataset"], "--no-progress"), bad, "negative")
    snap.assert_unchanged()
    assert run_cli("predict", good, files["image"], "--pixel-size", "0.24").code == 0


def _huge_weights(f: dict[str, Path], out: Path) -> Path:
    """Every weight x1e30: finite tensors (nothing to refuse on load), inf activations."""
    sd = {k: v * 1e30 if k.endswith("weight") else v for k, v in _state(f["model"]).items()}
    return rewrite_model(f["model"], out, tensors=sd, reseal="v2")


def test_model_computing_non_finite_output_is_refused(files, tmp_path: Path) -> None:
    bad = _huge_weights(files, tmp_path / "huge.zfm")
    snap = Snapshot(tmp_path, files["image"], files["dataset"])
    line = assert_refused(run_cli("predict", bad, files["image"], "--pixel-size", "0.24",
                                  "--json"), bad, files["image"])
    assert "produced non-finite output" in line
    line = assert_refused(run_cli("eval", bad, files["dataset"], "--no-progress"), bad)
    assert "produced non-finite output" in line
    snap.assert_unchanged()


def test_live_counts_non_finite_output_as_a_failure(files, tmp_path: Path) -> None:
    """The live loop gets NaN (not an exception, not a made-up z) and counts a failure."""
    from napari_zfocus.live.controller_settings import PREDICTION_NAN, ControllerSettings
    from napari_zfocus.live.frame_reading import read_frame
    from napari_zfocus.live.microscope import Frame
    from napari_zfocus.model.inference import Predictor

    predictor = Predictor.from_file(_huge_weights(files, tmp_path / "huge.zfm"), device="cpu")
    image = tifffile.imread(files["image"])
    pred = predictor.predict(image, 0.24)
    assert np.isnan(pred.z_um) and np.isnan(pred.confidence)
    settings = ControllerSettings(min_confidence=0.1)
    estimate, reason, _ = read_frame(Frame(image, 0.0, 0.0), predictor, 0.24, settings)
    assert reason == PREDICTION_NAN
    with pytest.raises(ZFocusError, match="huge.zfm: produced non-finite output"):
        predictor.predict_batch([image, image], 0.24)


# ------------------------------------------------------------------ the z grid of new models


def test_z_range_of_new_models_must_be_whole_bins(files, tmp_path: Path) -> None:
    """3 um bins over -5..5 gave centres -5, -2, 1, 4: no bin at focus."""
    with pytest.raises(ZFocusError, match=r"bin_um 3 .*z_min_um -5 .*z_max_um 5.* -6 6$"):
        ModelConfig(**dict(TINY, bin_um=3.0)).check_bin_grid()
    ModelConfig(**dict(TINY, bin_um=2.5)).check_bin_grid()  # 4 bins of 2.5 um: fine
    ModelConfig(bin_um=0.1, z_min_um=-2.0, z_max_um=2.0).check_bin_grid()  # rounding-safe
    out = tmp_path / "m.zfm"
    snap = Snapshot(files["dataset"])
    line = assert_refused(run_cli("train", files["dataset"], "--out", out, "--steps", "1",
                                  "--bin-um", "3", "--z-range", "-5", "5", "--no-progress"),
                          "bin_um", "z_min_um", "z_max_um")
    assert "whole bins" in line
    snap.assert_unchanged()
    assert not out.exists()


def test_models_with_a_partial_bin_still_load(tmp_path: Path) -> None:
    """The paper study's 3 um bins over +/-20 um (14 bins, -20..19) were trained and
    published: such files keep loading; only new training refuses the grid."""
    config = ModelConfig(**dict(TINY, bin_um=3.0, z_min_um=-20.0, z_max_um=20.0))
    assert config.n_bins == 14
    path = save_model(tmp_path / "study.zfm", build_network(config), config)
    assert load_model(path).config == config
