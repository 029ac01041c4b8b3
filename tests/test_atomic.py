"""Atomic writes: all or nothing, with ordinary file permissions."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from napari_zfocus._atomic import (
    _HOST,
    STALE_AGE_S,
    _pid_alive,
    atomic_path,
    atomic_write_text,
    remove_orphans,
)


def test_failed_write_leaves_old_file(tmp_path):
    target = tmp_path / "a.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.csv"]


def test_permissions_follow_umask_whatever_the_writer_did(tmp_path):
    target = tmp_path / "m.zfm"
    with atomic_path(target) as tmp:
        tmp.unlink()  # like writers that replace the file they are given...
        tmp.write_bytes(b"x")
        os.chmod(tmp, 0o600)  # ...with private permissions, as mkstemp makes them
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    atomic_write_text(tmp_path / "t.txt", "hi")
    assert (tmp_path / "t.txt").read_text() == "hi"


# --- temporary files left by killed writers ------------------------------------------


def _exited_pid() -> int:
    """The PID of a process that has finished and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_next_write_removes_temp_files_of_dead_writers_only(tmp_path):
    target = tmp_path / "a.csv"
    dead = tmp_path / f".a.csv.{_exited_pid()}@{_HOST}.abcd1234.tmp"
    live_here = tmp_path / f".a.csv.{os.getpid()}@{_HOST}.abcd1234.tmp"  # a concurrent thread
    other_target = tmp_path / f".a.csv.ckpt.{_exited_pid()}@{_HOST}.abcd1234.tmp"
    other_host = tmp_path / f".a.csv.{_exited_pid()}@000000.abcd1234.tmp"  # its PID means nothing
    user_file = tmp_path / ".a.csv.notes.tmp.txt"
    for p in (dead, live_here, other_target, other_host, user_file):
        p.write_bytes(b"partial")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert not dead.exists()
    assert live_here.exists() and other_target.exists() and other_host.exists()
    assert user_file.exists()
    _age(other_host, STALE_AGE_S + 60)  # old enough that no write can still be running
    atomic_write_text(target, "newer")
    assert not other_host.exists() and live_here.exists()


def test_old_style_temp_files_go_only_once_stale(tmp_path):
    target = tmp_path / "m.zfm"
    recent = tmp_path / ".m.zfm.k2j4_x9q.tmp"  # name written by the previous version
    stale = tmp_path / ".m.zfm.a8d7fq1z.tmp"
    recent.write_bytes(b"x")
    stale.write_bytes(b"x")
    _age(stale, STALE_AGE_S + 60)
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"model")
    assert recent.exists() and not stale.exists()
    assert sorted(os.listdir(tmp_path)) == [".m.zfm.k2j4_x9q.tmp", "m.zfm"]


def test_temp_file_of_a_running_process_is_kept_and_of_a_zombie_removed(tmp_path):
    target = tmp_path / "a.csv"
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    try:
        tmp = tmp_path / f".a.csv.{proc.pid}@{_HOST}.zz99zz99.tmp"
        tmp.write_bytes(b"x")
        assert remove_orphans(target) == []
        assert tmp.exists()
        proc.stdin.close()  # it exits; not reaped yet, it is a zombie that writes nothing
        deadline = time.monotonic() + 30
        while _pid_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert remove_orphans(target) == [tmp]
    finally:
        proc.wait()


def test_temp_names_identify_the_writer(tmp_path):
    with atomic_path(tmp_path / "x.bin") as tmp:
        assert tmp.name.startswith(f".x.bin.{os.getpid()}@{_HOST}.")
        assert tmp.name.endswith(".tmp")
        tmp.write_bytes(b"1")
