"""``kill -9`` during a write: models, checkpoints and annotations.csv stay whole.

A writer process runs the real code paths (``save_model``, ``save_checkpoint``,
``write_annotations``) and is killed with SIGKILL, either at a known point inside a write
(between writing the temporary file and renaming it) or at arbitrary points of a write
loop. Every file on disk must then be absent or complete and loadable, and the next write
must remove the temporary files the killed writer left behind.

Writers are forked from this process (torch is imported once), so each kill costs
milliseconds; every wait polls with a generous timeout instead of assuming a speed.
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
        done = FORK.Value("i", 0)
        proc = FORK.Process(target=_model_loop, args=(str(out), done))
        proc.start()
        try:
            _kill_somewhere(proc, done, rng.randint(1, 3), rng)
        finally:
            _kill(proc)
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
        done = FORK.Value("i", 0)
        proc = FORK.Process(target=_annotation_loop, args=(str(folder), done))
        proc.start()
        try:
            _kill_somewhere(proc, done, rng.randint(1, 20), rng)
        finally:
            _kill(proc)
        rows = read_dataset(folder, check_stacks=False).annotations
        n = len(rows)
        assert 201 <= n < 500
        assert rows[-1].extra["note"] == f"row {n - 1} of {n}"  # the whole file, up to its end
    write_annotations(folder, _annotations(3))
    assert _temps(csv_path) == []
    assert len(read_dataset(folder, check_stacks=False).annotations) == 3
