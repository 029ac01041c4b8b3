"""Hostile model files: every edit, truncation or impostor is refused in one line.

A model file is a safetensors file whose metadata anyone can edit with a few lines of
Python. Each case below makes one bad file from a valid tiny model and runs ``zfocus
predict`` (some also ``zfocus eval``) on it: exit 2, one stderr line naming the file, no
traceback, and every file left as it was. Three kinds of tamperer:

* naive: edits metadata or weights and keeps the stored hash -> "integrity check failed";
* informed: recomputes the version-2 hash -> the configuration and consistency checks
  (each field's range, metadata against tensor shapes, the stored bin centres);
* old files: format version 1 hashed the weights only -> the consistency checks.

The direct checks of :class:`ModelConfig` and of the device names are at the end.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from _reliability import Snapshot, assert_refused, run_cli
from safetensors.torch import save_file

from _model_files import read_raw, rewrite_model, write_v1_model
from _tiny import TINY, write_noise_dataset
from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.device import check_device, resolve_device
from napari_zfocus.model.io import load_model, save_model
from napari_zfocus.model.network import build_network


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A valid tiny model (current and version 1 format), an image and a dataset."""
    d = tmp_path_factory.mktemp("bad_models")
    torch.manual_seed(0)
    config = ModelConfig(**TINY)
    net = build_network(config).eval()
    image = d / "image.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 4000, (60, 60), np.uint16))
    return {
        "dir": d,
        "model": save_model(d / "good.zfm", net, config, {"note": "valid"}),
        "v1": write_v1_model(d / "good_v1.zfm", net, config, {"note": "valid v1"}),
        "image": image,
        "dataset": write_noise_dataset(d / "ds", 2, (11, 56, 56), focus_index=5),
    }


def _state(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in read_raw(path)[1].items()}


def _edit_tensor(name: str, change: Callable[[torch.Tensor], torch.Tensor]):
    def make(f: dict[str, Path], out: Path) -> Path:
        sd = _state(f["model"])
        sd[name] = change(sd[name])
        return rewrite_model(f["model"], out, tensors=sd, reseal="v2")

    return make


def _drop_tensor(f: dict[str, Path], out: Path) -> Path:
    sd = _state(f["model"])
    del sd["classifier.1.bias"]
    return rewrite_model(f["model"], out, tensors=sd, reseal="v2")


def _extra_tensor(f: dict[str, Path], out: Path) -> Path:
    sd = _state(f["model"])
    sd["backdoor.weight"] = torch.zeros(3)
    return rewrite_model(f["model"], out, tensors=sd, reseal="v2")


def _naive_weight_edit(f: dict[str, Path], out: Path) -> Path:
    sd = _state(f["model"])
    sd["classifier.4.bias"][3] += 0.5
    return rewrite_model(f["model"], out, tensors=sd)


def _config_and_centres(f: dict[str, Path], out: Path) -> Path:
    """A valid configuration, consistent bin centres, a correct hash: only the tensor
    shapes can tell that it is not the configuration these weights were trained with."""
    edited = ModelConfig(**dict(TINY, bin_um=2.0))
    return rewrite_model(f["model"], out, settings={"bin_um": 2.0}, reseal="v2",
                         bin_centres_um=json.dumps(edited.bin_centres_um.tolist()))


def _bytes(content: Callable[[bytes], bytes]):
    def make(f: dict[str, Path], out: Path) -> Path:
        out.write_bytes(content(f["model"].read_bytes()))
        return out

    return make


def _directory(f: dict[str, Path], out: Path) -> Path:
    out.mkdir()
    (out / "weights.bin").write_bytes(b"x")
    return out


class _Evil:
    """Unpickling this creates ``code_ran`` next to the file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickle(f: dict[str, Path], out: Path) -> Path:
    out.write_bytes(pickle.dumps(_Evil(out.parent / "code_ran")))
    return out


def _torch_save(f: dict[str, Path], out: Path) -> Path:
    torch.save({"state_dict": _state(f["model"]), "evil": _Evil(out.parent / "code_ran")}, out)
    return out


def _foreign_safetensors(f: dict[str, Path], out: Path) -> Path:
    save_file({"w": torch.zeros(2)}, str(out), metadata={"format": "pt"})
    return out


def _meta(reseal: str | None = None, **changes):
    return lambda f, out: rewrite_model(f["model"], out, reseal=reseal, **changes)


def _v1(**changes):
    return lambda f, out: rewrite_model(f["v1"], out, **changes)


def _v1_weights_edited(f: dict[str, Path], out: Path) -> Path:
    sd = _state(f["v1"])
    sd["classifier.4.bias"][0] -= 1.0
    return rewrite_model(f["v1"], out, tensors=sd)


#: One bad configuration value per case: a hostile file with a recomputed hash.
BAD_CONFIG = {
    "architecture_unknown": {"architecture": "resnet"},
    "architecture_number": {"architecture": 5},
    "normalisation_unknown": {"normalisation": "none"},
    "pixel_size_zero": {"pixel_size_um": 0},
    "pixel_size_negative": {"pixel_size_um": -0.24},
    "pixel_size_string": {"pixel_size_um": "0.24"},
    "pixel_size_nan": {"pixel_size_um": float("nan")},
    "pixel_size_huge": {"pixel_size_um": 1e9},
    "field_zero": {"field_um": 0.0},
    "field_list": {"field_um": [12.0]},
    "input_too_large": {"field_um": 5000.0},
    "bin_zero": {"bin_um": 0},
    "bin_tiny": {"bin_um": 1e-7},
    "bin_bool": {"bin_um": True},
    "z_range_empty": {"z_min_um": 5.0, "z_max_um": -5.0},
    "z_range_huge": {"z_min_um": -1e12, "z_max_um": 1e12},
    "too_many_bins": {"bin_um": 0.001},
    "one_bin": {"bin_um": 50.0},
    "conv_features_empty": {"conv_features": []},
    "conv_features_zero": {"conv_features": [0, 8]},
    "conv_features_too_many_layers": {"conv_features": [4] * 9},
    "conv_features_string": {"conv_features": "48"},
    "conv_features_fraction": {"conv_features": [4.5, 8]},
    "conv_features_huge": {"conv_features": [4, 100000]},
    "kernel_zero": {"kernel_size": 0},
    "kernel_negative": {"kernel_size": -3},
    "kernel_larger_than_input": {"kernel_size": 60},
    "kernel_fraction": {"kernel_size": 2.5},
    "pool_zero": {"pool_size": 0},
    "pool_too_big_for_input": {"pool_size": 30},
    "fc_zero": {"fc_features": 0},
    "fc_huge": {"fc_features": 10**9},
    "dropout_one": {"dropout": 1.0},
    "dropout_negative": {"dropout": -0.1},
    "batchnorm_number": {"batchnorm": 1},
    "batchnorm_string": {"batchnorm": "yes"},
    "extra_list": {"extra": []},
    "unknown_setting": {"evil": 1},
}


@pytest.mark.parametrize("field", sorted(BAD_CONFIG))
def test_bad_configuration_value_is_refused(files, tmp_path: Path, field: str) -> None:
    bad = rewrite_model(files["model"], tmp_path / "bad.zfm", settings=BAD_CONFIG[field],
                        reseal="v2")
    snap = Snapshot(bad, files["image"])
    line = assert_refused(run_cli("predict", bad, files["image"], "--pixel-size", "0.24"),
                          bad, "invalid model configuration")
    # The message names the setting at fault (or the quantity it makes impossible).
    named = [k for k in BAD_CONFIG[field] if k in line]
    assert named or any(w in line for w in ("bins", "px", "parameters", "network")), line
    snap.assert_unchanged()


#: Every other way to make a model file bad: name -> (maker, words in the message).
CASES: dict[str, tuple[Callable[[dict, Path], Path], str]] = {
    # naive tamperers: the hash gives them away
    "bins_1_to_2_um": (_meta(settings={"bin_um": 2.0, "z_min_um": -10.0, "z_max_um": 10.0}),
                       "integrity check failed"),
    "naive_weight_edit": (_naive_weight_edit, "integrity check failed"),
    "naive_user_metadata_edit": (_meta(metadata=json.dumps({"note": "forged"})),
                                 "integrity check failed"),
    "naive_added_entry": (_meta(source="elsewhere"), "integrity check failed"),
    "hash_removed": (_meta(drop=("sha256",)), "integrity check failed"),
    "hash_garbage": (_meta(sha256="0" * 64), "integrity check failed"),
    # informed tamperers: the hash is right, the content is not
    "config_differs_from_tensors": (_config_and_centres, "6"),
    "bin_centres_edited": (_meta("v2", bin_centres_um=json.dumps([0.0] * 11)), "bin centres"),
    "bin_centres_not_json": (_meta("v2", bin_centres_um="[0, 1"), "bin_centres_um"),
    "bin_centres_strings": (_meta("v2", bin_centres_um='["a", "b"]'), "bin_centres_um"),
    "config_not_json": (_meta("v2", config="{pixel_size_um: 1"), "config"),
    "config_a_list": (_meta("v2", config="[1, 2]"), "JSON object"),
    "config_nested_deeply": (_meta("v2", config="[" * 100000 + "]" * 100000), "config"),
    "config_missing": (_meta("v2", drop=("config",)), "config"),
    "metadata_not_json": (_meta("v2", metadata="{'a': 1}"), "metadata"),
    "metadata_a_list": (_meta("v2", metadata="[]"), "metadata"),
    "format_version_newer": (_meta(format_version="3"), "newer"),
    "format_version_text": (_meta(format_version="two"), "format version"),
    "format_version_zero": (_meta(format_version="0"), "format version"),
    "format_version_negative": (_meta(format_version="-1"), "format version"),
    "format_missing": (_meta(drop=("format",)), "not a napari-zfocus model"),
    "weight_nan": (_edit_tensor("classifier.4.bias", lambda t: t * float("nan")), "NaN"),
    "weight_inf": (_edit_tensor("features.1.weight", lambda t: t / 0.0), "infinite"),
    "weight_wrong_shape": (_edit_tensor("features.1.weight", lambda t: t[:2]), "shape"),
    "weight_int_dtype": (_edit_tensor("classifier.1.bias", lambda t: t.to(torch.int32)),
                         "dtype"),
    "weight_float64": (_edit_tensor("classifier.1.bias", lambda t: t.double()), "dtype"),
    "last_layer_bins": (_edit_tensor("classifier.4.weight", lambda t: t[:7]), "7 z-bins"),
    "first_fc_inputs": (_edit_tensor("classifier.1.weight", lambda t: t[:, :8].contiguous()),
                        "take 8 features"),
    "weight_missing": (_drop_tensor, "missing"),
    "weight_extra": (_extra_tensor, "unexpected"),
    # old (version 1) files: metadata is checked against the weights
    # the hostile tester's case: same number of bins, every reading doubled
    "v1_bins_1_to_2_um": (_v1(settings={"bin_um": 2.0, "z_min_um": -10.0, "z_max_um": 10.0}),
                          "bin centres"),
    "v1_pixel_size": (_v1(settings={"pixel_size_um": 0.4}), "30 px input"),
    "v1_weights_edited": (_v1_weights_edited, "integrity check failed"),
    "v1_invalid_config": (_v1(settings={"pool_size": 0}), "pool_size"),
    # not a model file at all
    "truncated_half": (_bytes(lambda b: b[: len(b) // 2]), "truncated"),
    "truncated_header": (_bytes(lambda b: b[:20]), "truncated"),
    "zero_bytes": (_bytes(lambda b: b""), "not a napari-zfocus model"),
    "random_bytes": (_bytes(lambda b: np.random.default_rng(1).bytes(5000)),
                     "not a napari-zfocus model"),
    "text_file": (_bytes(lambda b: b"hello, not a model\n"), "not a napari-zfocus model"),
    "pickle_named_zfm": (_pickle, "refusing"),
    "torch_save_named_zfm": (_torch_save, "refusing"),
    "foreign_safetensors": (_foreign_safetensors, "not a napari-zfocus model"),
    "a_directory": (_directory, "not a file"),
}

@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_model_file_is_refused_by_predict(files, tmp_path: Path, case: str) -> None:
    make, words = CASES[case]
    bad = make(files, tmp_path / "bad.zfm")
    snap = Snapshot(tmp_path, files["image"], files["model"], files["v1"])
    result = run_cli("predict", bad, files["image"], "--pixel-size", "0.24")
    line = assert_refused(result, bad)
    assert words in line, line
    snap.assert_unchanged()
    assert not (tmp_path / "code_ran").exists()


@pytest.mark.parametrize("case", ["bins_1_to_2_um", "v1_bins_1_to_2_um", "weight_nan",
                                  "truncated_half", "pickle_named_zfm", "a_directory"])
def test_bad_model_file_is_refused_by_eval(files, tmp_path: Path, case: str) -> None:
    make, words = CASES[case]
    bad = make(files, tmp_path / "bad.zfm")
    snap = Snapshot(tmp_path, files["dataset"])
    line = assert_refused(run_cli("eval", bad, files["dataset"], "--no-progress"), bad)
    assert words in line, line
    snap.assert_unchanged()


def test_missing_model_file_is_refused(files, tmp_path: Path) -> None:
    line = assert_refused(run_cli("predict", tmp_path / "nope.zfm", files["image"],
                                  "--pixel-size", "0.24"), "nope.zfm")
    assert "no such model file" in line


# ------------------------------------------------------------------ what still loads


def test_valid_files_of_both_versions_still_predict(files) -> None:
    for model in (files["model"], files["v1"]):
        result = run_cli("predict", model, files["image"], "--pixel-size", "0.24", "--json")
        assert result.code == 0, result.err
        assert -5.0 <= json.loads(result.out.splitlines()[-1])["z_um"] <= 5.0


def test_shipped_demo_model_loads() -> None:
    from napari_zfocus.live.headless import demo_model_path

    loaded = load_model(demo_model_path())
    assert loaded.info["format_version"] == 2 and loaded.config.n_bins == 41


# ------------------------------------------------------------------ ModelConfig directly

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
