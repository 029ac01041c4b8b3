"""Atomic writes: all or nothing, with ordinary file permissions."""

from __future__ import annotations

import os
import stat

import pytest

from napari_zfocus._atomic import atomic_path, atomic_write_text


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
