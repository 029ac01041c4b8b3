"""``kill -9`` during a write: models, checkpoints and annotations.csv stay whole.

A writer process runs the real code paths (``save_model``, ``save_checkpoint``,
``write_annotations``) and is killed with SIGKILL, either at a known point inside a write
(between writing the temporary file and renaming it) or at arbitrary points of a write
loop. Every file on disk must then be absent or complete and loadable, and the next write
must remove the temporary files the killed writer left behind.

Writers are forked from this process (torch is imported once), so each kill costs
milliseconds; every wait polls with a generous timeout instead of assuming a speed.

Then the faults a scheduler or a full disk cause: SIGTERM during ``zfocus train`` saves like
Ctrl-C, and a write that fails (file-size limit, standing in for a full disk) is one error
line naming the file, with nothing half-written left behind.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork and SIGKILL")

torch = pytest.importorskip("torch")

from _tiny import TINY
from napari_zfocus.data import Annotation, read_dataset, write_annotations
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import load_model, save_model
from napari_zfocus.model.network import build_network
from napari_zfocus.training.checkpoint import load_checkpoint, save_checkpoint

FORK = multiprocessing.get_context("fork")
TIMEOUT_S = 60.0


def _temps(target: Path) -> list[Path]:
    """Temporary files of ``target`` (not of ``target.ckpt``, which shares the prefix)."""
    return [p for p in target.parent.glob(f".{target.name}.*.tmp")
            if not p.name.startswith(f".{target.name}.ckpt.")]


def _wait(condition, what: str, proc=None) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if proc is not None and not proc.is_alive():
            raise AssertionError(f"the writer died (exit code {proc.exitcode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def _in_forked_writer() -> None:
    """One intra-op thread, as DataLoader workers do: a thread pool inherited through fork
    from this (test) process would deadlock the first parallel operation."""
    torch.set_num_threads(1)


def _kill(proc) -> None:
    """SIGKILL the writer and reap it (a writer that already died is only reaped)."""
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(TIMEOUT_S)
    assert proc.exitcode is not None, "the writer survived SIGKILL"


def _write_model(out: Path, version: int, net=None) -> None:
    config = ModelConfig(**TINY)
    save_model(out, net or build_network(config), config, metadata={"version": version})


def _write_checkpoint(path: Path, version: int, net=None) -> None:
    net = net or build_network(ModelConfig(**TINY))
    opt = torch.optim.Adam(net.parameters())
    save_checkpoint(path, {"model": net.state_dict(), "optimizer": opt.state_dict(),
                           "step": version, "elapsed_s": 0.0, "model_config": ModelConfig(**TINY),
                           # ~2 MB, so that a good part of the time is spent inside writes
                           "padding": torch.full((500_000,), float(version))})


def _run_and_kill(loop, target: str, wanted: int, rng: random.Random):
    """Fork a writer running ``loop(target, done)``, kill it somewhere; return ``done``."""
    done = FORK.Value("i", 0)
    proc = FORK.Process(target=loop, args=(target, done))
    proc.start()
    try:
        _kill_somewhere(proc, done, wanted, rng)
    finally:
        _kill(proc)
    return done


def _kill_somewhere(proc, done, wanted: int, rng: random.Random) -> None:
    """Wait for ``wanted`` completed cycles, then kill at a random point of a later one.

    The point is a random fraction of the cycle time measured so far, so kills spread over
    the whole write cycle on a fast or a slow machine alike.
    """
    t0 = time.monotonic()
    _wait(lambda: done.value >= wanted, f"{wanted} writes", proc)
    cycle_s = (time.monotonic() - t0) / max(done.value, 1)
    time.sleep(rng.uniform(0.0, 2.0 * cycle_s))
    _kill(proc)


def _check_model(out: Path, versions: range) -> None:
    if out.exists():
        assert load_model(out).metadata["version"] in versions


def _check_checkpoint(path: Path, versions: range) -> None:
    if path.exists():
        state = load_checkpoint(path)
        assert state["step"] in versions
        assert bool((state["padding"] == state["step"]).all())


# --------------------------------------------------------------- killed inside a write


def _stalling_writer(kind: str, target: str, inside) -> None:
    """Write ``target`` through the real code path, but stop where the temporary file is
    complete and not yet renamed onto it, and wait there to be killed."""
    import napari_zfocus._atomic as atomic

    _in_forked_writer()

    def stall(src, dst):
        inside.set()
        time.sleep(TIMEOUT_S)

    atomic.os.replace = stall  # this forked process only
    (_write_model if kind == "model" else _write_checkpoint)(Path(target), 2)


@pytest.mark.parametrize("kind", ["model", "checkpoint"])
def test_kill_between_write_and_rename_keeps_old_file_next_write_cleans(tmp_path, kind):
    target = tmp_path / ("m.zfm" if kind == "model" else "m.zfm.ckpt")
    write, check = ((_write_model, _check_model) if kind == "model"
                    else (_write_checkpoint, _check_checkpoint))
    write(target, 1)
    before = target.read_bytes()
    inside = FORK.Event()
    proc = FORK.Process(target=_stalling_writer, args=(kind, str(target), inside))
    proc.start()
    try:
        _wait(lambda: inside.is_set() or not proc.is_alive(), "the writer to reach the rename")
        assert inside.is_set(), f"the writer failed (exit code {proc.exitcode})"
    finally:
        _kill(proc)
    assert target.read_bytes() == before  # the old file, whole
    check(target, range(1, 2))
    orphans = _temps(target)
    assert len(orphans) == 1 and f".{proc.pid}@" in orphans[0].name  # the writer's, complete
    write(target, 3)  # the next write of this target removes it
    assert _temps(target) == []
    check(target, range(3, 4))


# --------------------------------------------------------------- killed anywhere in a loop


def _model_loop(out: str, done) -> None:
    _in_forked_writer()
    net = build_network(ModelConfig(**TINY))
    version = 0
    while True:
        version += 1
        _write_model(Path(out), version, net)
        _write_checkpoint(Path(out + ".ckpt"), version, net)
        done.value = version


def test_killed_training_writer_leaves_loadable_model_and_checkpoint(tmp_path):
    out = tmp_path / "m.zfm"
    ckpt = tmp_path / "m.zfm.ckpt"
    rng = random.Random(0)
    for _ in range(3):
        done = _run_and_kill(_model_loop, str(out), rng.randint(1, 3), rng)
        _check_model(out, range(1, done.value + 2))
        _check_checkpoint(ckpt, range(1, done.value + 2))
    _write_model(out, 100)
    _write_checkpoint(ckpt, 100)
    assert _temps(out) == [] and _temps(ckpt) == []
    _check_model(out, range(100, 101))
    _check_checkpoint(ckpt, range(100, 101))


def _annotations(n: int) -> list[Annotation]:
    return [Annotation(f"stack_{i:04d}.tif", i % 31, 1.0, 0.24, extra={"note": f"row {i} of {n}"})
            for i in range(n)]


def _annotation_loop(folder: str, done) -> None:
    n = 0
    while True:
        n += 1
        write_annotations(folder, _annotations(200 + n % 300))
        done.value = n


def test_killed_annotation_writer_leaves_a_complete_annotations_csv(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    csv_path = folder / "annotations.csv"
    rng = random.Random(1)
    for _ in range(4):
        _run_and_kill(_annotation_loop, str(folder), rng.randint(1, 20), rng)
        rows = read_dataset(folder, check_stacks=False).annotations
        n = len(rows)
        assert 201 <= n < 500
        assert rows[-1].extra["note"] == f"row {n - 1} of {n}"  # the whole file, up to its end
    write_annotations(folder, _annotations(3))
    assert _temps(csv_path) == []
    assert len(read_dataset(folder, check_stacks=False).annotations) == 3


# --------------------------------------------------------------- SIGTERM, failed writes

#: A tiny, fast training: 32 px input, 2 images per step, one thread, no validation.
TRAIN = ["--pixel-size-um", "1", "--field-um", "32", "--z-range", "-5", "5", "--batch", "2",
         "--threads", "1", "--no-progress", "--val-fraction", "0"]


def _forked_cli(argv: list[object], result, fsize_limit: int | None = None) -> None:
    """Run ``zfocus ARGV`` in this forked process (torch is already imported: fast), under
    a file-size limit if asked; put (exit code, stderr) into ``result``."""
    from _reliability import run_cli

    _in_forked_writer()
    if fsize_limit is not None:
        _limit_file_size(fsize_limit)
    outcome = run_cli(*argv)
    result.put((outcome.code, outcome.err))


def _limit_file_size(limit: int) -> None:
    """Writes beyond ``limit`` bytes fail with EFBIG, as on a full disk (SIGXFSZ, which
    would kill the process instead, is ignored)."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _start(argv: list[object], fsize_limit: int | None = None):
    result = FORK.Queue()
    proc = FORK.Process(target=_forked_cli, args=(argv, result, fsize_limit))
    proc.start()
    return proc, result


def _finish(proc, result) -> tuple[int, str]:
    try:
        code, err = result.get(timeout=3 * TIMEOUT_S)
    finally:
        proc.join(TIMEOUT_S)
        if proc.is_alive():
            _kill(proc)
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err


def _small_dataset(tmp_path: Path) -> Path:
    from _tiny import write_noise_dataset

    return write_noise_dataset(tmp_path / "ds", 2, (11, 40, 40), 5, pixel_size_um=1.0)


def test_sigterm_during_training_saves_checkpoint_and_model_like_ctrl_c(tmp_path):
    ds = _small_dataset(tmp_path)
    out, ckpt, lock = (tmp_path / n for n in ("m.zfm", "m.zfm.ckpt", "m.zfm.lock"))
    proc, result = _start(["train", ds, "--out", out, "--steps", 10**7,
                           "--checkpoint-every", 2, *TRAIN])
    try:
        _wait(ckpt.exists, "the first checkpoint", proc)
        assert lock.read_text().startswith(f"{proc.pid}@")  # held while training
    except BaseException:
        _kill(proc)
        raise
    os.kill(proc.pid, signal.SIGTERM)
    code, err = _finish(proc, result)
    assert code == 143, err
    assert "stopping on SIGTERM" in err
    state = load_checkpoint(ckpt)
    assert state["step"] >= 2
    assert load_model(out).metadata["training"]["steps"] >= state["step"]  # not older
    assert not lock.exists() and _temps(out) == [] and _temps(ckpt) == []


def test_train_write_failure_is_one_line_naming_the_checkpoint(tmp_path):
    ds = _small_dataset(tmp_path)
    out = tmp_path / "m.zfm"
    code, err = _finish(*_start(["train", ds, "--out", out, "--steps", 1, *TRAIN], 4096))
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line]
    assert code == 2 and errors == lines[-1:], lines  # after the "training: ..." line
    assert f"{out}.ckpt: cannot write the checkpoint (" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no model, lock, temp


def test_simulate_write_failure_is_one_line_and_leaves_no_empty_folder(tmp_path):
    out = tmp_path / "new" / "sim"
    code, err = _finish(*_start(["simulate", out, "--stacks", 1, "--size", 32, "--slices", 3,
                                 "--pixel-size", 1, "--quiet"], 4096))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert "stack_000.tif: cannot write the stack (" in lines[0]
    assert not (tmp_path / "new").exists()  # both folders it created are gone


def _limited_save(kind: str, target: str, result) -> None:
    from napari_zfocus.errors import ZFocusError

    _in_forked_writer()
    _limit_file_size(4096)
    try:
        (_write_model if kind == "model" else _write_checkpoint)(Path(target), 2)
        result.put("no error")
    except ZFocusError as exc:
        result.put(str(exc))


@pytest.mark.parametrize("kind", ["model", "checkpoint"])
def test_failed_save_is_a_zfocus_error_naming_the_file(tmp_path, kind):
    """The library writers themselves (the training dock calls them too): one line naming
    the file and the cause; the old file stays whole, no temporary file is left."""
    target = tmp_path / ("m.zfm" if kind == "model" else "m.zfm.ckpt")
    (_write_model if kind == "model" else _write_checkpoint)(target, 1)
    before = target.read_bytes()
    result = FORK.Queue()
    proc = FORK.Process(target=_limited_save, args=(kind, str(target), result))
    proc.start()
    try:
        message = result.get(timeout=TIMEOUT_S)
    finally:
        proc.join(TIMEOUT_S)
    what = "model file" if kind == "model" else "checkpoint"
    assert message.startswith(f"{target}: cannot write the {what} ("), message
    if kind == "model":  # safetensors names the system's cause
        assert message.endswith("(File too large)")
    assert target.read_bytes() == before and _temps(target) == []
