"""Atomic file writes: write to a temporary file in the same folder, then rename.

A crash or kill during a write leaves either the old file or the new one, never a
truncated mix. Used for annotations, checkpoints, models and exported CSVs.

A kill (``kill -9``, power loss) during a write leaves the temporary file behind. Its name,
``.{target}.{pid}@{host}.XXXXXXXX.tmp``, says which process wrote it, so the next atomic
write to the same target removes the temporary files of writers that are gone, and never
one of a writer that is still running (another thread or process writing the same file).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

#: Temporary files without a live writer we can identify (written by an older version of
#: napari-zfocus, or by another machine sharing the folder) are removed only when older
#: than this: no single atomic write takes that long.
STALE_AGE_S = 300.0

#: ``{pid}@{host}.{random}`` after ``.{target}.`` and before ``.tmp``; ``{random}`` is
#: mkstemp's, letters, digits and ``_``.
_OWNED = re.compile(r"(\d+)@([0-9a-f]{6})\.[A-Za-z0-9_]+")
#: ``{random}`` alone: the names written before the writer was part of them.
_ANONYMOUS = re.compile(r"[A-Za-z0-9_]+")


def _host_tag() -> str:
    """Six hex digits naming this machine (a PID means nothing on another one)."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]


_HOST = _host_tag()


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (unknown counts as alive)."""
    if pid <= 0:
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        try:
            import psutil
        except ImportError:
            return True
        return bool(psutil.pid_exists(pid))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    # A killed child that its parent has not reaped yet is a zombie: it writes nothing more.
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    return True


def temp_file(target: str | os.PathLike[str]) -> Path:
    """Create an empty temporary file next to ``target``, named after it and this process.

    The folder must exist. The caller renames the file onto ``target`` or removes it.
    """
    target = Path(target)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}@{_HOST}.", suffix=".tmp", dir=target.parent
    )
    os.close(fd)
    return Path(name)


def _is_orphan(path: Path, middle: str, now: float) -> bool:
    owned = _OWNED.fullmatch(middle)
    if owned is not None and owned.group(2) == _HOST:
        return not _pid_alive(int(owned.group(1)))
    if owned is None and _ANONYMOUS.fullmatch(middle) is None:
        return False  # not a temporary file of this target (e.g. one of "<target>.ckpt")
    try:
        return now - path.stat().st_mtime > STALE_AGE_S
    except OSError:
        return False


def remove_orphans(target: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed writers of ``target`` left behind.

    Returns the removed paths. Never raises: cleaning up must not break a write.
    """
    target = Path(target)
    prefix, suffix = f".{target.name}.", ".tmp"
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    now = time.time()
    removed = []
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        path = target.parent / name
        if _is_orphan(path, name[len(prefix):-len(suffix)], now):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The caller writes the temporary file however it likes (``torch.save``,
    ``tifffile.imwrite``...). On an exception the temporary file is removed and
    ``path`` is untouched. Temporary files of earlier, killed writers of ``path`` are
    removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(target)
    tmp = temp_file(target)
    try:
        yield tmp
        # mkstemp makes 0600 files (and some writers recreate the file): give the result
        # the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb+") as fh:  # flush to disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", **kwargs
) -> Iterator[IO]:
    """Open a temporary file for writing and atomically rename it onto ``path``."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
