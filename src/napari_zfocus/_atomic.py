"""Atomic file writes: write to a temporary file in the same folder, then rename.

A crash or kill during a write leaves either the old file or the new one, never a
truncated mix. Used for annotations, checkpoints, models and exported CSVs.

A kill (``kill -9``, power loss) during a write leaves the temporary file behind. Its name,
``.{target}.{pid}@{host}.XXXXXXXX.tmp``, says which process wrote it, so the next atomic
write to the same target removes the temporary files of writers that are gone, and never
one of a writer that is still running (another thread or process writing the same file).

Two more pieces of the same kind: :func:`write_errors_named` turns a failed write (disk
full, file-size limit) into one :class:`~napari_zfocus.errors.ZFocusError` line naming the
file, and :func:`exclusive_lock` is a lock file that keeps two processes from writing the
same outputs (a lock whose process is gone is taken over).
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
from typing import IO, Any

from napari_zfocus.errors import ZFocusError

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
    path: str | os.PathLike[str], mode: str = "w", **kwargs: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing and atomically rename it onto ``path``."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


# ------------------------------------------------------------------ failed writes

#: The errno that writers which do not raise OSError put in their message (safetensors:
#: "I/O error: File too large (os error 27)").
_OS_ERROR = re.compile(r"os error (\d+)")


def write_failure(path: str | os.PathLike[str], what: str, exc: BaseException) -> ZFocusError:
    """The one-line error of a failed write of ``path``: ``"<path>: cannot write the
    <what> (<cause>)"``; the cause is the system's when known."""
    cause = exc.strerror if isinstance(exc, OSError) else None
    if not cause:
        found = _OS_ERROR.search(str(exc))
        # A short write without an errno (tifffile, torch's zip writer) is a size limit or
        # a full disk: nothing else makes a local write stop part-way.
        cause = (os.strerror(int(found.group(1))) if found
                 else "the write stopped part-way: file too large or disk full")
    return ZFocusError(f"{os.fspath(path)}: cannot write the {what} ({cause})")


@contextlib.contextmanager
def write_errors_named(
    path: str | os.PathLike[str], what: str, *also: type[BaseException]
) -> Iterator[None]:
    """Turn an ``OSError`` (and the library errors ``also`` that a failed write raises,
    e.g. torch's ``RuntimeError``) inside the block into :func:`write_failure`.

    Wrap the whole ``with atomic_path(...)`` block, so its temporary file is gone first.
    """
    errors: tuple[type[BaseException], ...] = (OSError, *also)
    try:
        yield
    except errors as exc:
        raise write_failure(path, what, exc) from None


# ------------------------------------------------------------------ lock files

#: A lock file's content: the holder's ``{pid}@{host}`` (just ``{pid}``: this machine).
_LOCK_OWNER = re.compile(r"\s*(\d+)(?:@([0-9a-f]{6}))?\s*")
#: An empty lock is being written by its creator; older than this, its creator died.
_LOCK_BIRTH_S = 10.0


class LockHeldError(ZFocusError):
    """The lock is held by a running process; ``holder`` says which (``"PID 1234"``)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path}: held by {holder}")
        self.path = path
        self.holder = holder


def _lock_holder(path: Path, fd: int) -> str | None:
    """Who holds the lock open as ``fd``: a description, or None when the lock is stale.

    Raises ZFocusError when ``path`` is not a lock file (never removed then).
    """
    text = os.read(fd, 256).decode("ascii", "replace")
    if not text.strip():
        age = time.time() - os.fstat(fd).st_mtime
        return "a process that is just starting" if age < _LOCK_BIRTH_S else None
    owner = _LOCK_OWNER.fullmatch(text)
    if owner is None:
        raise ZFocusError(f"{path}: exists and is not a lock file of napari-zfocus; "
                          "remove it if no zfocus command is running")
    pid, host = int(owner.group(1)), owner.group(2) or _HOST
    if host != _HOST:
        return f"PID {pid} on another machine"
    return f"PID {pid}" if _pid_alive(pid) else None


def _take_over_if_stale(path: Path) -> None:
    """Remove the lock at ``path`` if its process is gone; LockHeldError if it runs.

    Two processes may find the same stale lock: an ``flock`` on it (POSIX) lets one of
    them at a time decide, and the inode check makes the other see the new lock instead
    of removing it.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # released meanwhile: try to create it again
    except OSError as exc:
        raise ZFocusError(f"{path}: exists and cannot be read as a lock file "
                          f"({exc.strerror or exc})") from None
    try:
        with contextlib.suppress(ImportError):
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        mine = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            return  # someone took it over first: look at the new lock
        try:
            holder = _lock_holder(path, fd)
        except IsADirectoryError:
            raise ZFocusError(f"{path}: is a folder, where a lock file would be") from None
        if holder is not None:
            raise LockHeldError(path, holder)
        path.unlink()
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock file ``path`` (created with ``O_EXCL``, holding this process's
    ``{pid}@{host}``) for the block; it is removed at the end, also on an error.

    A lock whose process is gone (killed with ``kill -9``) is stale and taken over.

    Raises
    ------
    LockHeldError
        Another running process holds it (also one on another machine sharing the folder).
    ZFocusError
        ``path`` exists and is not a lock file, or cannot be created.
    """
    lock = Path(path)
    me = f"{os.getpid()}@{_HOST}\n".encode()
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            _take_over_if_stale(lock)
            continue
        except OSError as exc:
            raise ZFocusError(f"{lock}: cannot create the lock file "
                              f"({exc.strerror or exc})") from None
        try:
            os.write(fd, me)
        except OSError as exc:  # disk full: an empty lock would block the next run 10 s
            lock.unlink()
            raise write_failure(lock, "lock file", exc) from None
        finally:
            os.close(fd)
        break
    else:
        raise LockHeldError(lock, "another process")
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):  # never remove a lock that is no longer ours
            if lock.read_bytes() == me:
                lock.unlink()
