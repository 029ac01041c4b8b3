"""Every output path is checked before the work starts, and no user file is ever replaced.

A hostile user points each output flag at the dataset, a stack, a folder, a place that
cannot be written...: each is refused at once (exit 2, one line naming the flag and the
path) and every file stays as it was. Then the ways to replace on purpose still work:
``train --overwrite``, ``train --resume``, re-running ``live --csv`` and ``eval --plots``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from _reliability import Snapshot, assert_refused, run_cli

from _tiny import write_noise_dataset, write_untrained_model

#: A 32 um field at 1 um/px: the smallest network the train flags can ask for.
SMALL = ["--pixel-size-um", "1", "--field-um", "32", "--z-range", "-5", "5",
         "--batch", "4", "--threads", "1", "--no-progress"]
#: A fast, model-free live session (test pattern, oracle estimates).
LIVE = ["live", "--simulate", "--oracle-noise", "0.2", "--scene", "pattern", "--size", "32",
        "--hours", "0.05", "--drift-um", "5"]
#: Nobody, root included, can create files under /proc.
PROC = Path("/proc/zfocus-no-such-folder")


@dataclass
class World:
    """A user's files: a dataset, an earlier model with its checkpoint, other files."""

    root: Path
    ds: Path
    model: Path
    ckpt: Path
    notes: Path
    a_file: Path
    lone_ckpt_out: Path  # a model path that has no model, only a checkpoint


def _checkpoint(path: Path) -> Path:
    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.training.checkpoint import save_checkpoint

    return save_checkpoint(path, {"model": {}, "optimizer": {}, "step": 1,
                                  "elapsed_s": 1.0, "model_config": ModelConfig()})


@pytest.fixture
def w(tmp_path: Path) -> World:
    ds = write_noise_dataset(tmp_path / "ds", 2, (11, 40, 40), 5, pixel_size_um=1.0)
    model = write_untrained_model(tmp_path / "old.zfm")
    ckpt = _checkpoint(tmp_path / "old.zfm.ckpt")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    lone = tmp_path / "lone.zfm"
    _checkpoint(tmp_path / "lone.zfm.ckpt")
    return World(tmp_path, ds, model, ckpt, notes, a_file, lone)


def _train(w: World, out: object, *flags: str) -> list[object]:
    return ["train", w.ds, "--out", out, "--steps", "1", *flags, *SMALL]


Case = Callable[[World], tuple[list[object], tuple[object, ...]]]

#: (id, case): the case gives the command line and what its one error line must name.
TRAIN_NON_MODELS: dict[str, Callable[[World], Path]] = {
    "annotations_csv": lambda w: w.ds / "annotations.csv",
    "stack_tiff": lambda w: w.ds / "s0.tif",
    "text_file": lambda w: w.notes,
    "empty_file": lambda w: w.a_file,
    "its_own_ckpt": lambda w: w.ckpt,
    "a_torch_archive": lambda w: w.lone_ckpt_out.with_name("lone.zfm.ckpt"),
}
FLAG_SETS = {"no_flag": (), "overwrite": ("--overwrite",), "resume": ("--resume",)}

CASES: dict[str, Case] = {}
for _target, _path in TRAIN_NON_MODELS.items():
    for _flags_id, _flags in FLAG_SETS.items():
        CASES[f"train_out_{_target}_{_flags_id}"] = (
            lambda w, p=_path, f=_flags: (_train(w, p(w), *f), ("--out", p(w))))

CASES.update({
    "train_out_symlink_to_annotations": lambda w: (
        _train(w, _symlink(w.root / "link.zfm", w.ds / "annotations.csv"), "--overwrite"),
        ("--out", w.root / "link.zfm")),
    "train_out_existing_model": lambda w: (
        _train(w, w.model), ("--out", w.model, "--overwrite", "--resume")),
    "train_out_existing_checkpoint_only": lambda w: (
        _train(w, w.lone_ckpt_out), ("--out", w.lone_ckpt_out.name + ".ckpt", "--overwrite")),
    "train_ckpt_not_a_checkpoint": lambda w: (
        _train(w, _with_bad_ckpt(w, "text"), "--overwrite"), ("--out", "new.zfm.ckpt")),
    "train_ckpt_not_a_checkpoint_resume": lambda w: (
        _train(w, _with_bad_ckpt(w, "text"), "--resume"), ("--out", "new.zfm.ckpt")),
    "train_ckpt_is_a_folder": lambda w: (
        _train(w, _with_bad_ckpt(w, "folder"), "--overwrite"), ("--out", "new.zfm.ckpt")),
    "train_out_is_a_folder": lambda w: (_train(w, w.root), ("--out", w.root)),
    "train_out_is_the_dataset": lambda w: (_train(w, w.ds, "--overwrite"), ("--out", w.ds)),
    "train_out_parent_is_a_file": lambda w: (
        _train(w, w.a_file / "m.zfm"), ("--out", w.a_file / "m.zfm")),
    "train_out_under_proc": lambda w: (_train(w, PROC / "m.zfm"), ("--out", PROC / "m.zfm")),
    "train_resume_without_checkpoint": lambda w: (
        _train(w, w.root / "new.zfm", "--resume"), ("--resume", "new.zfm.ckpt")),
    "train_resume_model_without_checkpoint": lambda w: (
        _train(w, _model_only(w), "--resume"), ("--resume", "solo.zfm.ckpt")),
    "train_resume_and_overwrite": lambda w: (
        _train(w, w.model, "--resume", "--overwrite"), ("--resume", "--overwrite")),
    "live_csv_is_a_folder": lambda w: ([*LIVE, "--csv", w.root], ("--csv", w.root)),
    "live_csv_parent_is_a_file": lambda w: (
        [*LIVE, "--csv", w.a_file / "d.csv"], ("--csv", w.a_file / "d.csv")),
    "live_csv_under_proc": lambda w: ([*LIVE, "--csv", PROC / "d.csv"], ("--csv", PROC / "d.csv")),
    "live_csv_user_file": lambda w: ([*LIVE, "--csv", w.notes], ("--csv", w.notes)),
    "live_csv_annotations": lambda w: (
        [*LIVE, "--csv", w.ds / "annotations.csv"], ("--csv", w.ds / "annotations.csv")),
    "live_csv_a_stack": lambda w: ([*LIVE, "--csv", w.ds / "s1.tif"], ("--csv", w.ds / "s1.tif")),
    "live_hardware_csv_under_proc": lambda w: (
        ["live", "--mm-config", w.root / "none.cfg", "--csv", PROC / "d.csv"],
        ("--csv", PROC / "d.csv")),
    "eval_plots_is_a_file": lambda w: (
        ["eval", w.model, w.ds, "--plots", w.notes], ("--plots", w.notes)),
    "eval_plots_parent_is_a_file": lambda w: (
        ["eval", w.model, w.ds, "--plots", w.a_file / "p"], ("--plots", w.a_file / "p")),
    "eval_plots_under_proc": lambda w: (
        ["eval", w.model, w.ds, "--plots", PROC / "p"], ("--plots", PROC / "p")),
    "eval_plots_user_csv_inside": lambda w: (
        ["eval", w.model, w.ds, "--plots", _plots_with(w, "per_image_errors.csv", b"mine")],
        ("--plots", w.root / "plots", "per_image_errors.csv")),
    "eval_plots_user_png_inside": lambda w: (
        ["eval", w.model, w.ds, "--plots", _plots_with(w, "confusion.png", b"GIF89a")],
        ("--plots", w.root / "plots", "confusion.png")),
    "eval_plots_output_name_is_a_folder": lambda w: (
        ["eval", w.model, w.ds, "--plots", _plots_with(w, "confusion_matrix.csv", None)],
        ("--plots", w.root / "plots")),
    "simulate_out_is_a_file": lambda w: (["simulate", w.notes, "--overwrite"], ("OUT", w.notes)),
    "simulate_out_parent_is_a_file": lambda w: (
        ["simulate", w.a_file / "sim"], ("OUT", w.a_file / "sim")),
    "simulate_out_under_proc": lambda w: (["simulate", PROC / "sim"], ("OUT", PROC / "sim")),
    "simulate_out_holds_stacks": lambda w: (
        ["simulate", _stacks_folder(w)], ("OUT", w.root / "sim", "--overwrite")),
    "simulate_out_holds_a_dataset": lambda w: (["simulate", w.ds], (w.ds, "--overwrite")),
    "simulate_annotations_is_a_folder": lambda w: (
        ["simulate", _annotations_folder(w), "--overwrite"], ("OUT", w.root / "sim2")),
    # A trailing separator names a folder: never a FILE named like the folder.
    "train_out_trailing_separator": lambda w: (
        _train(w, f"{w.root / 'newdir'}{os.sep}"), ("--out", f"newdir{os.sep}", "separator")),
    "live_csv_trailing_separator": lambda w: (
        [*LIVE, "--csv", f"{w.root / 'newlog'}{os.sep}"], ("--csv", f"newlog{os.sep}")),
    # Plots never litter a dataset.
    "eval_plots_is_the_dataset": lambda w: (
        ["eval", w.model, w.ds, "--plots", w.ds], ("--plots", w.ds, "dataset")),
    "eval_plots_inside_the_dataset": lambda w: (
        ["eval", w.model, w.ds, "--plots", w.ds / "plots"], ("--plots", w.ds / "plots")),
    "eval_plots_inside_the_baseline_fit_dataset": lambda w: (
        ["eval", w.model, w.ds, "--baselines", "--baseline-fit", w.ds, "--plots",
         w.ds / "sub" / "p"], ("--plots", w.ds / "sub" / "p")),
    # Another training (a running process: this one) holds OUT.lock.
    "train_out_locked_by_a_running_training": lambda w: (
        _train(w, _locked(w, os.getpid())), ("--out", "busy.zfm", f"PID {os.getpid()}")),
    "train_out_locked_resume": lambda w: (
        _train(w, _locked(w, os.getpid(), ckpt=True), "--resume"),
        ("--out", "busy.zfm", f"PID {os.getpid()}")),
    "train_out_lock_is_a_user_file": lambda w: (
        _train(w, _locked(w, "my notes")), ("--out", "busy.zfm.lock", "not a lock file")),
    # --resume with a --steps budget the checkpoint has already used: nothing to train.
    "train_resume_steps_equal_to_checkpoint": lambda w: (
        _resume(w, 5), ("--steps 5", "already at step 5", "--minutes")),
    "train_resume_steps_below_checkpoint": lambda w: (
        _resume(w, 2), ("--steps 2", "already at step 5")),
})


def _locked(w: World, holder: object, ckpt: bool = False) -> Path:
    """``busy.zfm`` whose lock file holds ``holder`` (a PID, or a user's text)."""
    out = w.root / "busy.zfm"
    out.with_name("busy.zfm.lock").write_text(f"{holder}\n")
    if ckpt:
        _valid_checkpoint(out.with_name("busy.zfm.ckpt"), 1)
    return out


def _valid_checkpoint(path: Path, step: int) -> Path:
    """A checkpoint that --resume can load: a TINY network and a fresh Adam state."""
    import torch

    from _tiny import TINY
    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.model.network import build_network
    from napari_zfocus.training.checkpoint import save_checkpoint

    config = ModelConfig(**TINY)
    net = build_network(config)
    return save_checkpoint(path, {
        "model": net.state_dict(), "optimizer": torch.optim.Adam(net.parameters()).state_dict(),
        "step": step, "elapsed_s": 1.0, "model_config": config})


def _resume(w: World, steps: int) -> list[object]:
    out = w.root / "at5.zfm"
    _valid_checkpoint(out.with_name("at5.zfm.ckpt"), 5)
    return ["train", w.ds, "--out", out, "--resume", "--steps", steps, "--no-progress",
            "--threads", "1"]


def _symlink(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _with_bad_ckpt(w: World, kind: str) -> Path:
    ckpt = w.root / "new.zfm.ckpt"
    if kind == "folder":
        ckpt.mkdir()
        (ckpt / "keep.txt").write_text("keep")
    else:
        ckpt.write_text("not a checkpoint")
    return w.root / "new.zfm"


def _model_only(w: World) -> Path:
    return write_untrained_model(w.root / "solo.zfm")


def _plots_with(w: World, name: str, content: bytes | None) -> Path:
    plots = w.root / "plots"
    plots.mkdir()
    if content is None:
        (plots / name).mkdir()
        (plots / name / "keep.txt").write_text("keep")
    else:
        (plots / name).write_bytes(content)
    return plots


def _stacks_folder(w: World) -> Path:
    sim = w.root / "sim"
    sim.mkdir()
    (sim / "stack_000.tif").write_bytes(b"a user's stack")
    return sim


def _annotations_folder(w: World) -> Path:
    sim = w.root / "sim2"
    (sim / "annotations.csv").mkdir(parents=True)
    (sim / "annotations.csv" / "keep.txt").write_text("keep")
    return sim


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_output_refused_up_front_and_files_untouched(w: World, case: Case) -> None:
    argv, names = case(w)
    snapshot = Snapshot(w.root)
    result = run_cli(*argv)
    assert_refused(result, *names)
    snapshot.assert_unchanged()
    assert not [p for p in w.root.rglob("*.tmp")], "a probe or temporary file was left"


def test_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30


# ---------------------------------------------------------------- replacing on purpose


def test_overwrite_replaces_a_model_and_its_checkpoint(w: World) -> None:
    from napari_zfocus.model.io import load_model
    from napari_zfocus.training.checkpoint import load_checkpoint

    before = w.model.read_bytes()
    result = run_cli(*_train(w, w.model, "--overwrite", "--json", "--val-fraction", "0.5"))
    assert result.code == 0, result.err
    assert w.model.read_bytes() != before
    assert load_model(w.model).config.input_px == 32  # the new model, not the old TINY one
    assert load_checkpoint(w.ckpt)["step"] == 1


def test_resume_still_continues_the_checkpoint(w: World) -> None:
    from napari_zfocus.training.checkpoint import load_checkpoint

    out = w.root / "fresh.zfm"
    assert run_cli(*_train(w, out, "--val-fraction", "0.5")).code == 0
    resumed = run_cli("train", w.ds, "--out", out, "--steps", "2", "--resume", "--threads", "1",
                      "--batch", "4", "--no-progress", "--json", "--val-fraction", "0.5")
    assert resumed.code == 0, resumed.err
    assert json.loads(resumed.out.splitlines()[-1])["steps"] == 2
    assert load_checkpoint(out.with_name("fresh.zfm.ckpt"))["step"] == 2
    # A third, fresh run onto the result is refused without --overwrite.
    assert_refused(run_cli(*_train(w, out)), "--out", out, "--overwrite")


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_a_stale_lock_is_taken_over_and_every_lock_is_removed(w: World) -> None:
    """A lock left by a killed training (its PID is gone) does not block the next one; the
    lock is removed when training ends, also when it ends with an error."""
    out = w.root / "stale.zfm"
    lock = out.with_name("stale.zfm.lock")
    lock.write_text(f"{_dead_pid()}\n")
    result = run_cli(*_train(w, out, "--val-fraction", "0.5"))
    assert result.code == 0, result.err
    assert out.is_file() and not lock.exists()
    # An error inside the locked part (a checkpoint for another network): lock gone too.
    failed = run_cli("train", w.ds, "--out", out, "--resume", "--steps", "3", "--bin-um", "2",
                     "--no-progress", "--threads", "1")
    assert_refused(failed, "stale.zfm.ckpt")
    assert not lock.exists()


def test_live_csv_replaces_an_earlier_decision_log(w: World) -> None:
    log = w.root / "decisions.csv"
    assert run_cli(*LIVE, "--csv", log).code == 0
    first = log.read_text()
    assert first.startswith("index,time_s,")
    os.utime(log, (0, 0))
    result = run_cli(*LIVE, "--drift-um", "9", "--csv", log)
    assert result.code == 0, result.err
    assert log.stat().st_mtime > 0 and log.read_text() != first


def test_eval_plots_rerun_replaces_only_its_own_files(tmp_path: Path) -> None:
    from napari_zfocus.inspection.plots import EVALUATION_FILES

    model = write_untrained_model(tmp_path / "tiny.zfm")
    ds = write_noise_dataset(tmp_path / "ds", 1, (13, 56, 60), focus_index=6)
    plots = tmp_path / "plots"
    (plots / "sub").mkdir(parents=True)
    (plots / "readme.txt").write_text("mine")  # another name: never touched
    for _ in range(2):  # the second run replaces the files of the first
        result = run_cli("eval", model, ds, "--plots", plots, "--no-progress", "--json")
        assert result.code == 0, result.err
    assert {p.name for p in plots.iterdir()} == {*EVALUATION_FILES, "sub", "readme.txt"}
    for name, head in EVALUATION_FILES.items():
        assert (plots / name).read_bytes().startswith(head), name
    assert (plots / "readme.txt").read_text() == "mine"


# ---------------------------------------------------------------- what counts as ours


@pytest.mark.parametrize("version", ["1", "99"])
def test_a_model_of_any_format_version_is_an_earlier_model_not_a_user_file(w: World, version):
    """Older files (and ones from a newer napari-zfocus) are models: --overwrite may replace
    them, nothing else does."""
    import torch
    from safetensors.torch import save_file

    out = w.root / f"v{version}.zfm"
    save_file({"w": torch.zeros(2)}, str(out),
              metadata={"format": "napari-zfocus-model", "format_version": version})
    snapshot = Snapshot(w.root)
    assert_refused(run_cli(*_train(w, out)), "--out", out, "--overwrite")
    snapshot.assert_unchanged()


def test_sniffers_recognise_only_our_files(w: World) -> None:
    import torch

    from napari_zfocus.outputs import is_checkpoint_file, is_model_file

    assert is_model_file(w.model) and not is_model_file(w.ckpt)
    assert is_checkpoint_file(w.ckpt) and not is_checkpoint_file(w.model)
    for other in (w.notes, w.a_file, w.ds / "s0.tif", w.ds / "annotations.csv", w.ds):
        assert not is_model_file(other) and not is_checkpoint_file(other)
    torch.save({"format": "something else"}, w.root / "other.pt")
    assert not is_checkpoint_file(w.root / "other.pt")
