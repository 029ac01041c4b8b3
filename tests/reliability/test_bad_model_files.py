"""Hostile model files: every edit, truncation or impostor is refused in one line.

A model file is a safetensors file whose metadata anyone can edit with a few lines of
Python. Each case below makes one bad file from a valid tiny model and runs ``zfocus
predict`` (some also ``zfocus eval``) on it: exit 2, one stderr line naming the file, no
traceback, and every file left as it was. Three kinds of tamperer:

* naive: edits metadata or weights and keeps the stored hash -> "integrity check failed";
* informed: recomputes the version-2 hash -> the configuration and consistency checks
  (each field's range, metadata against tensor shapes, the stored bin centres);
* old files: format version 1 hashed the weights only -> the consistency checks.

The direct checks of :class:`ModelConfig`, of the device names, of models that compute
NaN and of the z grid of new models are in test_bad_model_settings.py.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from _bad_models import _state, write_model_files
from _reliability import Snapshot, assert_refused, run_cli
from safetensors.torch import save_file

from _model_files import rewrite_model
from _tiny import TINY
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import load_model


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A valid tiny model (current and version 1 format), an image and a dataset."""
    return write_model_files(tmp_path_factory.mktemp("bad_models"))


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

