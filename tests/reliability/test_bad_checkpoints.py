"""Hostile checkpoints and training settings: refused in one line before any training.

A checkpoint (``<model>.ckpt``) is what ``zfocus train --resume`` continues from. Each
case below takes a valid checkpoint written by a one-step training, damages it in one
way and resumes from it: exit 2, one stderr line naming the checkpoint, no traceback,
and the dataset, the model and the checkpoint left exactly as they were. The settings
objects are checked directly at the end (what a script or the widget may pass).
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _reliability import Snapshot, assert_refused, run_cli

from _tiny import write_noise_dataset
from napari_zfocus.errors import ModelFileError, ZFocusError
from napari_zfocus.training.checkpoint import CHECKPOINT_VERSION, load_checkpoint
from napari_zfocus.training.loop import TrainConfig

#: A 32 um field at 1 um/px: the smallest network the train flags can ask for.
# The paper CNN: the tensor names and kernel edits below are its own.
SMALL = ["--architecture", "paper_cnn", "--pixel-size-um", "1", "--field-um", "32",
         "--z-range", "-5", "5",
         "--batch", "4", "--threads", "1", "--no-progress"]
RESUME = ["--resume", "--steps", "2", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A dataset, and a model with its checkpoint after one training step."""
    d = tmp_path_factory.mktemp("bad_ckpt")
    ds = write_noise_dataset(d / "ds", 2, (11, 40, 40), 5, pixel_size_um=1.0)
    model = d / "good" / "m.zfm"
    result = run_cli("train", ds, "--out", model, "--steps", "1", "--val-fraction", "0", *SMALL)
    assert result.code == 0, result.err
    return {"ds": ds, "model": model, "ckpt": model.with_name("m.zfm.ckpt")}


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _set(key: str, value: Any) -> Callable[[dict], None]:
    def edit(state: dict) -> None:
        state[key] = value

    return edit


def _drop(key: str) -> Callable[[dict], None]:
    return lambda state: state.pop(key)


def _config(**changes: Any) -> Callable[[dict], None]:
    def edit(state: dict) -> None:
        state["model_config"] = json.dumps(dict(json.loads(state["model_config"]), **changes))

    return edit


def _model_tensor(name: str, change: Callable[[torch.Tensor], torch.Tensor | None]):
    def edit(state: dict) -> None:
        new = change(state["model"][name])
        if new is None:
            del state["model"][name]
        else:
            state["model"][name] = new

    return edit


def _model_extra(state: dict) -> None:
    state["model"]["backdoor"] = torch.zeros(2)


def _optimizer(change: Callable[[dict], None]) -> Callable[[dict], None]:
    return lambda state: change(state["optimizer"])


def _opt_state_shape(opt: dict) -> None:
    opt["state"][0]["exp_avg"] = torch.zeros(3)


def _opt_two_groups(opt: dict) -> None:
    group = opt["param_groups"][0]
    opt["param_groups"] = [dict(group, params=group["params"][:2]),
                           dict(group, params=group["params"][2:])]


def _opt_betas(opt: dict) -> None:
    opt["param_groups"][0]["betas"] = ("x", "y")


def _opt_nan(opt: dict) -> None:
    opt["state"][0]["exp_avg_sq"] = opt["state"][0]["exp_avg_sq"] * float("nan")


#: Edits of the checkpoint's dict: name -> (edit, words in the message).
EDITS: dict[str, tuple[Callable[[dict], None], str]] = {
    "version_newer": (_set("version", CHECKPOINT_VERSION + 1), "newer"),
    "version_string": (_set("version", "1"), "version"),
    "version_zero": (_set("version", 0), "version"),
    "version_bool": (_set("version", True), "version"),
    "version_float": (_set("version", 1.5), "version"),
    "version_missing": (_drop("version"), "version"),
    "format_other": (_set("format", "someone-else"), "not a napari-zfocus checkpoint"),
    "step_negative": (_set("step", -1), "step"),
    "step_fraction": (_set("step", 1.5), "step"),
    "step_string": (_set("step", "3"), "step"),
    "step_huge": (_set("step", 10**15), "step"),
    "step_missing": (_drop("step"), "step"),
    "elapsed_nan": (_set("elapsed_s", float("nan")), "elapsed_s"),
    "elapsed_negative": (_set("elapsed_s", -5.0), "elapsed_s"),
    "schedule_t0_string": (_set("schedule_t0_s", "soon"), "schedule_t0_s"),
    "model_config_not_json": (_set("model_config", "{pool_size: 0"), "model_config"),
    "model_config_not_a_string": (_set("model_config", 5), "model_config"),
    "model_config_missing": (_drop("model_config"), "model configuration"),
    "model_config_pool_zero": (_config(pool_size=0), "pool_size"),
    "model_config_unknown_key": (_config(evil=1), "unknown model settings"),
    "model_config_bins_1_to_2_um": (_config(bin_um=2.0), "z-bins"),
    "model_config_kernel_edit": (_config(kernel_size=3), "shape"),
    "model_state_missing_key": (_model_tensor("classifier.1.bias", lambda t: None), "missing"),
    "model_state_extra_key": (_model_extra, "unexpected"),
    "model_state_wrong_shape": (_model_tensor("features.1.weight", lambda t: t[:1].clone()),
                                "shape"),
    "model_state_nan": (_model_tensor("classifier.4.bias", lambda t: t * float("nan")), "NaN"),
    "model_state_int": (_model_tensor("classifier.4.bias", lambda t: t.to(torch.int64)),
                        "dtype"),
    "model_state_a_list": (_set("model", [1, 2, 3]), "model state"),
    "model_state_missing": (_drop("model"), "model state"),
    "optimizer_missing": (_drop("optimizer"), "optimizer"),
    "optimizer_empty": (_set("optimizer", {}), "optimizer"),
    "optimizer_state_shape": (_optimizer(_opt_state_shape), "optimizer state 0.exp_avg"),
    "optimizer_two_groups": (_optimizer(_opt_two_groups), "optimizer"),
    "optimizer_betas_strings": (_optimizer(_opt_betas), "betas"),
    "optimizer_state_nan": (_optimizer(_opt_nan), "not finite"),
    "scaler_a_list": (_set("scaler", [1]), "scaler"),
    "torch_rng_a_string": (_set("torch_rng", "abc"), "torch_rng"),
    "train_config_a_list": (_set("train_config", "[1, 2]"), "train_config"),
    "train_config_not_json": (_set("train_config", "{"), "train_config"),
    "metrics_a_string_value": (_set("metrics", json.dumps({"within_1um": "high"})), "within_1um"),
}


def _case_dir(trained: dict[str, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the trained model and its checkpoint, for one case to damage."""
    model = tmp_path / "m.zfm"
    shutil.copy(trained["model"], model)
    ckpt = model.with_name("m.zfm.ckpt")
    shutil.copy(trained["ckpt"], ckpt)
    return model, ckpt


def _resume(trained: dict[str, Path], model: Path):
    return run_cli("train", trained["ds"], "--out", model, *RESUME)


@pytest.mark.parametrize("case", sorted(EDITS))
def test_damaged_checkpoint_entry_is_refused_on_resume(trained, tmp_path, case) -> None:
    edit, words = EDITS[case]
    model, ckpt = _case_dir(trained, tmp_path)
    state = _load(ckpt)
    edit(state)
    torch.save(state, ckpt)
    snap = Snapshot(tmp_path, trained["ds"])
    line = assert_refused(_resume(trained, model), ckpt)
    assert words in line, line
    snap.assert_unchanged()


class _Evil:
    """Unpickling this creates ``code_ran`` next to the checkpoint: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickled_object(ckpt: Path) -> None:
    state = _load(ckpt)
    state["extra"] = _Evil(ckpt.parent / "code_ran")
    torch.save(state, ckpt)


def _plain_pickle(ckpt: Path) -> None:
    ckpt.write_bytes(pickle.dumps(_Evil(ckpt.parent / "code_ran")))


def _a_list(ckpt: Path) -> None:
    torch.save([1, 2, 3], ckpt)


def _directory(ckpt: Path) -> None:
    ckpt.unlink()
    ckpt.mkdir()
    (ckpt / "data.pkl").write_bytes(b"x")


def _bytes(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    return lambda ckpt: ckpt.write_bytes(change(ckpt.read_bytes()))


#: Whole-file damage: name -> (damage, words in the message).
FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "pickled_object_inside": (_pickled_object, "not a readable checkpoint"),
    "plain_pickle": (_plain_pickle, "not a readable checkpoint"),
    "not_a_dict": (_a_list, "not a napari-zfocus checkpoint"),
    "truncated": (_bytes(lambda b: b[: len(b) // 2]), "not a readable checkpoint"),
    "zero_bytes": (_bytes(lambda b: b""), "not a readable checkpoint"),
    "random_bytes": (_bytes(lambda b: np.random.default_rng(2).bytes(4000)),
                     "not a readable checkpoint"),
    "a_directory": (_directory, "not a file"),
}


@pytest.mark.parametrize("case", sorted(FILES))
def test_damaged_checkpoint_file_is_refused_on_resume(trained, tmp_path, case) -> None:
    damage, words = FILES[case]
    model, ckpt = _case_dir(trained, tmp_path)
    damage(ckpt)
    snap = Snapshot(tmp_path, trained["ds"])
    # The CLI may refuse while checking its output paths, before reading the checkpoint...
    assert_refused(_resume(trained, model), ckpt)
    snap.assert_unchanged()
    # ...so the reader's own message is checked directly.
    with pytest.raises(ModelFileError, match=words) as err:
        load_checkpoint(ckpt)
    assert str(err.value).startswith(str(ckpt))
    snap.assert_unchanged()
    assert not (tmp_path / "code_ran").exists()


def test_valid_checkpoint_resumes(trained, tmp_path) -> None:
    model, _ = _case_dir(trained, tmp_path)
    result = run_cli("train", trained["ds"], "--out", model, *RESUME, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out.splitlines()[-1])["steps"] == 2


def test_version_1_checkpoint_without_optional_entries_loads(trained, tmp_path) -> None:
    """Checkpoints of the first release: version 1, no scaler, rng or metrics entries."""
    _, ckpt = _case_dir(trained, tmp_path)
    state = _load(ckpt)
    for key in ("scaler", "torch_rng", "metrics", "schedule_t0_s"):
        state.pop(key, None)
    assert state["version"] == 1
    torch.save(state, ckpt)
    loaded = load_checkpoint(ckpt)
    assert loaded["step"] == 1 and loaded["metrics"] == {}


def test_missing_checkpoint_is_refused(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="no checkpoint found"):
        load_checkpoint(tmp_path / "none.ckpt")


# ------------------------------------------------------------------ training settings

#: Bad values given to TrainConfig (what a script, the widget or the CLI may pass).
BAD_TRAIN = {
    "seed": [-1, 2**32, 1.5, "0", True],
    "batch": [0, -4, 10**6, 2.5],
    "lr": [0.0, -1e-3, float("nan"), float("inf"), 5.0],
    "label_sigma_um": [-1.0, float("nan")],
    "val_fraction": [1.0, -0.1],
    "validation_every": [-1, 0.5],
    "checkpoint_every": [-10],
    "threads": [0, -2, 10**6],
    "steps": [0, -5, 2.5, 10**12],
    "minutes": [0.0, -1.0, float("inf")],
    "device": ["bogus", "cuda:x", "", 3],
    "init": ["xavier"],
    "warmup_fraction": [1.0],
    "augment": ["yes"],
    "out": [""],
}


@pytest.mark.parametrize(
    ("field", "value"),
    [(k, v) for k, values in BAD_TRAIN.items() for v in values],
    ids=lambda x: repr(x)[:20],
)
def test_train_config_refuses_bad_value_naming_the_field(field: str, value: Any) -> None:
    settings = {"steps": 10, field: value}
    with pytest.raises(ZFocusError) as err:
        TrainConfig(**settings).validate()
    message = str(err.value)
    assert message.startswith(field) and "\n" not in message, message


def test_train_config_without_budget_and_valid_defaults() -> None:
    with pytest.raises(ZFocusError, match="budget"):
        TrainConfig().validate()
    TrainConfig(steps=1).validate()
    TrainConfig(minutes=0.5, seed=2**32 - 1, threads=1, device="cpu").validate()
    assert math.isclose(TrainConfig(steps=1).lr, 1e-3)


@pytest.mark.parametrize(
    ("flags", "name"),
    [
        (["--seed", "-1"], "seed"),
        (["--device", "bogus"], "device"),
        (["--bin-um", "1e-7"], "bin"),
        (["--z-range", "-1000000", "1000000"], "z"),
        (["--batch", "0"], "batch"),
        (["--lr", "nan"], "lr"),
    ],
    ids=lambda x: x[0] if isinstance(x, list) else x,
)
def test_bad_training_flag_is_one_line_and_writes_nothing(trained, tmp_path, flags, name):
    out = tmp_path / "new.zfm"
    snap = Snapshot(tmp_path, trained["ds"])
    argv = ["train", trained["ds"], "--out", out, "--steps", "1", *SMALL, *flags]
    assert_refused(run_cli(*argv), name)
    snap.assert_unchanged()
