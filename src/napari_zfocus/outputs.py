"""Checks of every output path, run by each command BEFORE its long work starts.

A bad output path must be refused in the first second, not after hours of training or a
whole night of live focus, and a file the user has must never be replaced by accident.
Every check raises :class:`~napari_zfocus.errors.ZFocusError` with one line that starts
with the flag and the path (``"--csv /data/log.csv: ..."``) and says what is allowed.

The writers themselves stay simple (:mod:`napari_zfocus._atomic` writes atomically); these
checks only decide whether writing may start. Whether a folder is writable is tested with
a real file, created and removed, because ``os.access`` says yes to root for read-only
mounts and mode bits alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from napari_zfocus._atomic import LockHeldError, exclusive_lock, temp_file
from napari_zfocus.errors import ZFocusError

#: Decides whether an existing file may be replaced (e.g. "it is an earlier output of ours").
Replaceable = Callable[[Path], bool]

#: A safetensors header longer than this is not one of our model files (ours are ~2 kB).
_MAX_HEADER_BYTES = 16 * 2**20


class OutputExistsError(ZFocusError):
    """The output is an earlier result of ours that an explicit "overwrite" would replace.

    The CLI prints it like any error; the training widget asks the user instead.
    """


# ------------------------------------------------------------------ what a file is


def starts_with(prefix: bytes) -> Replaceable:
    """A :data:`Replaceable` that accepts regular files beginning with ``prefix``."""

    def check(path: Path) -> bool:
        try:
            with open(path, "rb") as fh:
                return fh.read(len(prefix)) == prefix
        except OSError:
            return False

    return check


def is_model_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a napari-zfocus model file (any version), from its header only.

    A safetensors file starts with the length of a JSON header whose ``__metadata__``
    holds ``format``; the weights are not read.
    """
    from napari_zfocus.model.io import FORMAT_NAME

    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > _MAX_HEADER_BYTES:
                return False
            header = json.loads(fh.read(size))
    except (OSError, struct.error, ValueError):  # too short, not JSON, not a file
        return False
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and meta.get("format") == FORMAT_NAME


def is_checkpoint_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a napari-zfocus checkpoint, without loading its tensors.

    ``torch.save`` writes a zip whose ``data.pkl`` holds the pickled dict (tensors are
    separate entries); our dict holds the format string, which pickle stores verbatim.
    """
    from napari_zfocus.training.checkpoint import CHECKPOINT_FORMAT

    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [i for i in archive.infolist() if i.filename.endswith("/data.pkl")]
            if len(pickles) != 1 or pickles[0].file_size > _MAX_HEADER_BYTES:
                return False
            return CHECKPOINT_FORMAT.encode() in archive.read(pickles[0])
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


# ------------------------------------------------------------------ generic checks


def refuse_folder_syntax(path: str | os.PathLike[str], name: str, kind: str) -> None:
    """Refuse a file output written as a folder (``newdir/``): ``Path`` drops the trailing
    separator, so without this ``--out newdir/`` would write a FILE named ``newdir``."""
    text = os.fspath(path)
    if text.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        raise ZFocusError(f"{name} {text}: ends with a path separator, so it names a folder; "
                          f"give a {kind} name")


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def check_writable_folder(folder: Path, name: str, shown: Path, probe_for: str) -> None:
    """Refuse unless files can be created in ``folder`` (or in the folders it would need).

    Parameters
    ----------
    folder
        Folder the output goes into; may not exist yet (the writers create it).
    name, shown
        Flag and path that start the message.
    probe_for
        File name the probe is named after, so a probe left by a kill is cleaned up by the
        next atomic write of that file.
    """
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise ZFocusError(
            f"{name} {shown}: cannot write here, {existing} is a file, not a folder")
    try:
        temp_file(existing / probe_for).unlink()
    except OSError as exc:
        raise ZFocusError(
            f"{name} {shown}: cannot write in {existing} ({exc.strerror or exc})") from None


def _check_existing(
    path: Path, name: str, shown: Path, overwrite: bool, replaceable: Replaceable | None,
    overwrite_flag: str | None, kind: str,
) -> None:
    if not os.path.lexists(path):
        return
    # The file inside the folder a flag names (--plots DIR) is named as well.
    head = f"{name} {shown}: " + ("" if path == shown else f"{path} ")
    if path.is_dir():
        raise ZFocusError(head + ("is a folder; give a file name" if path == shown
                                  else "is a folder, where a file would be written"))
    if not path.is_file():
        raise ZFocusError(head + "exists and is not a regular file")
    if overwrite or (replaceable is not None and replaceable(path)):
        return
    how = f"pass {overwrite_flag} to replace it" if overwrite_flag else f"choose another {name}"
    raise ZFocusError(head + f"exists and is not {kind}; refusing to replace it, {how}")


def check_output_file(
    path: str | os.PathLike[str],
    name: str,
    *,
    overwrite: bool = False,
    replaceable: Replaceable | None = None,
    overwrite_flag: str | None = None,
    kind: str = "an earlier output of this command",
) -> Path:
    """Refuse an output file that cannot or must not be written; return it as a Path.

    Parameters
    ----------
    path
        The file a command will write.
    name
        The flag that names it (``"--csv"``): it starts the message.
    overwrite
        Whether the user asked to replace an existing file.
    replaceable
        Existing files it accepts may be replaced without ``overwrite`` (an earlier
        output of the same kind). Without it (and ``overwrite``) an existing file is refused.
    overwrite_flag
        The flag that would allow replacing, named in the message (``"--overwrite"``).
    kind
        What ``replaceable`` accepts, for the message (``"a zfocus decision log"``).

    Raises
    ------
    ZFocusError
        Empty path, a path ending with a separator, a folder, not a regular file, an
        existing file that may not be replaced, or a folder in which no file can be created.
    """
    if not str(path).strip():
        raise ZFocusError(f"{name}: give a file name")
    refuse_folder_syntax(path, name, "file")
    target = Path(path)
    _check_existing(target, name, target, overwrite, replaceable, overwrite_flag, kind)
    check_writable_folder(target.parent, name, target, target.name)
    return target


def check_output_folder(
    path: str | os.PathLike[str],
    name: str,
    *,
    files: Mapping[str, Replaceable | None] | None = None,
    overwrite: bool = False,
    overwrite_flag: str | None = None,
    kind: str = "an earlier output of this command",
) -> Path:
    """Refuse an output folder that cannot or must not be written; return it as a Path.

    Parameters
    ----------
    path
        The folder a command fills (created if missing).
    name
        The flag that names it.
    files
        The files the command writes into it, each with the test an existing file must
        pass to be replaced without ``overwrite`` (``None``: never).
    overwrite, overwrite_flag, kind
        As in :func:`check_output_file`.
    """
    if not str(path).strip():
        raise ZFocusError(f"{name}: give a folder")
    folder = Path(path)
    if os.path.lexists(folder) and not folder.is_dir():
        raise ZFocusError(f"{name} {folder}: exists and is not a folder")
    for file_name, replaceable in (files or {}).items():
        _check_existing(folder / file_name, name, folder, overwrite, replaceable,
                        overwrite_flag, kind)
    check_writable_folder(folder, name, folder, next(iter(files or {}), "output"))
    return folder


# ------------------------------------------------------------------ model files


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return a.resolve() == b.resolve()
    return False


def _dataset_file(out: Path, dataset: Path | None) -> str | None:
    """Describe ``out`` if it is an existing file of the dataset that is not a model."""
    if dataset is None or not out.is_file() or is_model_file(out):
        return None
    if _same_file(out, dataset / "annotations.csv"):
        return "is the dataset's annotations.csv"
    with contextlib.suppress(OSError):
        if dataset.resolve() in out.resolve().parents:
            return f"is a file of the dataset {dataset}"
    return None


def check_model_copy(out: str | os.PathLike[str], *, overwrite: bool, name: str = "--out",
                     how: str = "pass --overwrite to replace it") -> Path:
    """The rules of a model file written from another (``zfocus calibrate``, ``rescale``).

    A file that is not a napari-zfocus model is never replaced; an existing model only on
    ``overwrite`` (``how`` says how to ask for it); the folder must be writable.
    """
    if not str(out).strip():
        raise ZFocusError(f"{name}: give a model file name such as model.zfm")
    target = Path(out)
    if os.path.lexists(target) and target.is_file():
        if not is_model_file(target):
            raise ZFocusError(f"{name} {target}: exists and is not a napari-zfocus model file; "
                              f"refusing to replace it, choose another {name}")
        if not overwrite:
            raise ZFocusError(f"{name} {target}: a model already exists; {how}")
    return check_output_file(target, name, overwrite=True)  # a folder, an unwritable place


def check_model_output(
    out: str | os.PathLike[str],
    *,
    resume: bool,
    overwrite: bool,
    dataset: str | os.PathLike[str] | None = None,
    name: str = "--out",
    resume_name: str = "--resume",
    overwrite_name: str = "--overwrite",
) -> Path:
    """The rules of a training output: ``out`` and its checkpoint ``out.ckpt``.

    * never replaced, whatever the flags: a file that is not a napari-zfocus model (the
      dataset's ``annotations.csv``, a stack...), a ``.ckpt`` that is not a checkpoint;
    * an existing model or checkpoint is replaced only on ``overwrite`` (a fresh run) or
      continued on ``resume`` (which needs the checkpoint);
    * the folder must be writable.

    Raises
    ------
    OutputExistsError
        An earlier model or checkpoint exists and neither ``resume`` nor ``overwrite``.
    ZFocusError
        Any other refusal.
    """
    from napari_zfocus.training.checkpoint import checkpoint_path

    if not str(out).strip():
        raise ZFocusError(f"{name}: give a model file name such as model.zfm")
    refuse_folder_syntax(out, name, "model file")
    out = Path(out)
    ckpt = checkpoint_path(out)
    if resume and overwrite:
        raise ZFocusError(f"{resume_name} and {overwrite_name} exclude each other: "
                          f"{resume_name} continues {ckpt}, {overwrite_name} starts afresh")
    _refuse_foreign_files(out, ckpt, dataset, name)
    if resume and not ckpt.is_file():
        raise ZFocusError(f"{resume_name}: no checkpoint {ckpt} to continue from "
                          f"(train without {resume_name} first)")
    if not (resume or overwrite):
        if out.is_file():
            raise OutputExistsError(
                f"{name} {out}: a model already exists; pass {overwrite_name} to replace "
                f"it or {resume_name} to continue its training")
        if ckpt.is_file():
            raise OutputExistsError(
                f"{name} {out}: the checkpoint {ckpt} of an earlier training exists; pass "
                f"{overwrite_name} to start afresh or {resume_name} to continue it")
    check_writable_folder(out.parent, name, out, out.name)
    return out


def _refuse_foreign_files(
    out: Path, ckpt: Path, dataset: str | os.PathLike[str] | None, name: str
) -> None:
    """Refuse, whatever the flags, an ``out`` or ``out.ckpt`` that is not ours to replace."""
    where = _dataset_file(out, Path(dataset) if dataset is not None else None)
    if where is not None:
        raise ZFocusError(f"{name} {out}: {where}, not a model file; choose another {name}")
    if os.path.lexists(out):
        if out.is_dir():
            raise ZFocusError(f"{name} {out}: is a folder; give a model file name such as "
                              "model.zfm")
        if not out.is_file() or not is_model_file(out):
            raise ZFocusError(f"{name} {out}: exists and is not a napari-zfocus model file; "
                              f"refusing to replace it, choose another {name}")
    if os.path.lexists(ckpt) and not (ckpt.is_file() and is_checkpoint_file(ckpt)):
        raise ZFocusError(f"{name} {out}: {ckpt} exists and is not a napari-zfocus "
                          f"checkpoint; refusing to replace it, choose another {name}")


@contextlib.contextmanager
def model_output_lock(out: str | os.PathLike[str], name: str = "--out") -> Iterator[Path]:
    """Hold ``OUT.lock`` while a training writes ``out`` and ``out.ckpt``.

    Two trainings onto one model would replace each other's files at every checkpoint;
    the second is refused instead, naming the process that holds the lock. A lock left by
    a killed process is taken over. Take it, then run :func:`check_model_output` again:
    a run that finished between that check and the lock has written files since.

    Raises
    ------
    ZFocusError
        ``"--out <out>: ..."``: another running process writes it, or ``OUT.lock`` exists
        and is not a lock file.
    """
    lock = Path(out).with_name(Path(out).name + ".lock")
    with contextlib.ExitStack() as stack:
        try:  # only taking the lock: errors of the block itself pass unchanged
            lock.parent.mkdir(parents=True, exist_ok=True)  # the training would create it
            stack.enter_context(exclusive_lock(lock))
        except LockHeldError as exc:
            raise ZFocusError(
                f"{name} {out}: another zfocus train ({exc.holder}) is writing this model "
                f"(lock {lock}); wait for it to end or choose another {name}") from None
        except ZFocusError as exc:
            raise ZFocusError(f"{name} {out}: {exc}") from None
        except OSError as exc:
            raise ZFocusError(f"{name} {out}: cannot create the folder {lock.parent} "
                              f"({exc.strerror or exc})") from None
        yield lock


__all__ = [
    "OutputExistsError",
    "check_model_copy",
    "check_model_output",
    "check_output_file",
    "check_output_folder",
    "check_writable_folder",
    "is_checkpoint_file",
    "is_model_file",
    "model_output_lock",
    "refuse_folder_syntax",
    "starts_with",
]
