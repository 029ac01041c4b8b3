"""One validation layer for every input: CLI flags, widget fields, CSV rows, file metadata.

Every check here raises :class:`~napari_zfocus.errors.ZFocusError` with a one-line message
that names the field (``"--seed must be an integer >= 0, got -1"``), so the CLI can print it
as is and the widgets can show it as a notification. :func:`arg_type` wraps a check for
``argparse`` so a bad flag is refused while the command line is parsed, before any work.

Checks are plain functions over plain values: the model config, the checkpoint reader, the
dataset reader, the controller settings and the CLI all call the same ones, so a range is
written down once.
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from napari_zfocus.errors import ZFocusError

T = TypeVar("T")

#: A number as users write it: optional sign, ASCII digits with at most one decimal point,
#: an optional exponent; ``inf`` and ``nan`` pass here and are refused as not finite.
#: Python's ``float()`` also takes ``1_0`` (10) and non-ASCII digits (``"٤"`` is 4), so a
#: typo such as ``0_5`` for ``0.5`` would silently become 5: text goes through this first.
_NUMBER_TEXT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)",
    re.IGNORECASE,
)


def _bound(x: float) -> str:
    """A bound as users write it: integers in full (``4294967295``, not ``4.29497e+09``)."""
    if float(x).is_integer() and abs(x) < 1e16:
        return str(int(x))
    return f"{x:g}"


def _describe_range(
    lo: float | None, hi: float | None, lo_open: bool, hi_open: bool, integer: bool
) -> str:
    kind = "an integer" if integer else "a number"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {_bound(lo)}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {_bound(hi)}")
    return kind + (" " + " and ".join(parts) if parts else "")


def check_number(
    value: Any,
    name: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    integer: bool = False,
    strict: bool = False,
) -> Any:
    """Return ``value`` as a finite float (or int) inside the range, else raise.

    Parameters
    ----------
    value
        A number or a string holding one (CLI flags, CSV cells, JSON metadata).
    name
        What the user calls the field (``"--seed"``, ``"z_step_um"``): it starts the message.
    lo, hi
        Bounds, inclusive unless ``lo_open`` / ``hi_open``.
    integer
        Require an integer (``3`` or ``"3"``, also ``3.0``; not ``3.5``).
    strict
        Accept only real numbers, not strings holding one: values parsed from JSON (model
        files, checkpoints) must already have the right type, so ``"0.24"`` there is a
        sign of an edited or foreign file.

    Raises
    ------
    ZFocusError
        ``"<name> must be <range>, got <value>"``.
    """
    wanted = _describe_range(lo, hi, lo_open, hi_open, integer)
    if isinstance(value, bool) or value is None:
        raise ZFocusError(f"{name} must be {wanted}, got {value!r}")
    if strict and not isinstance(value, numbers.Real):
        raise ZFocusError(f"{name} must be {wanted}, got {value!r}")
    if isinstance(value, (str, bytes)):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        if not _NUMBER_TEXT.fullmatch(text.strip()):
            raise ZFocusError(f"{name} must be {wanted}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ZFocusError(f"{name} must be {wanted}, got {value!r}") from None
    if not math.isfinite(number):
        raise ZFocusError(f"{name} must be {wanted}, got {value!r}")
    if integer:
        if number != int(number):
            raise ZFocusError(f"{name} must be {wanted}, got {value!r}")
        number = int(number)
    too_low = lo is not None and (number <= lo if lo_open else number < lo)
    too_high = hi is not None and (number >= hi if hi_open else number > hi)
    if too_low or too_high:
        raise ZFocusError(f"{name} must be {wanted}, got {value!r}")
    return number


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise naming them."""
    options = tuple(choices)
    if value not in options:
        listed = ", ".join(repr(c) for c in options)
        raise ZFocusError(f"{name} must be one of {listed}, got {value!r}")
    return value


def check_interval(
    value: Any, name: str, *, lo: float | None = None, hi: float | None = None
) -> tuple[float, float]:
    """A pair ``(low, high)`` of finite numbers with ``low < high`` inside ``[lo, hi]``."""
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ZFocusError(f"{name} must be two numbers LOW HIGH, got {value!r}") from None
    a = check_number(a, f"{name} (low)", lo=lo, hi=hi)
    b = check_number(b, f"{name} (high)", lo=lo, hi=hi)
    if not a < b:
        raise ZFocusError(f"{name} must be increasing (LOW < HIGH), got {a:g} {b:g}")
    return float(a), float(b)


def inside_folder(folder: str | os.PathLike[str], relative: str, name: str) -> Path:
    """Resolve ``relative`` under ``folder``; refuse absolute paths and ``..`` escapes.

    Dataset files name their stacks relative to the dataset folder; a path that resolves
    outside it (``../../x.tif``, ``/etc/passwd``, a symlink out) is refused so a shared
    dataset cannot make the program read, or later overwrite, files elsewhere.
    """
    if "\0" in relative:  # the OS cannot even look such a path up
        raise ZFocusError(f"{name}: {relative!r} contains a NUL character")
    rel = Path(relative)
    drive = len(relative) > 1 and relative[1] == ":"
    if rel.is_absolute() or relative.startswith(("/", "\\")) or drive:
        raise ZFocusError(f"{name}: {relative!r} must be a path relative to {folder}")
    try:
        root = Path(folder).resolve()
        target = (root / rel).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        # A symlink loop (RuntimeError before Python 3.13, OSError after), a name the OS
        # refuses: a user error in the dataset, not an internal one.
        reason = "a symlink loop" if "loop" in str(exc).lower() else str(exc)
        raise ZFocusError(f"{name}: {relative!r} cannot be resolved ({reason})") from None
    if target != root and root not in target.parents:
        raise ZFocusError(f"{name}: {relative!r} points outside the folder {folder}")
    return target


def check_entry_version(entry: Any, name: str, newest: int) -> int:
    """The ``version`` of a JSON ``entry`` of a file (``name``: ``"calibration"``), refusing
    an entry that is not an object, has no integer version >= 1, or is newer than ``newest``
    (written by a later napari-zfocus)."""
    if not isinstance(entry, dict):
        raise ZFocusError(f"{name} must be a JSON object")
    version = int(check_number(entry.get("version"), f"{name} version", lo=1, integer=True,
                               strict=True))
    if version > newest:
        raise ZFocusError(f"{name} version {version} is newer than this napari-zfocus reads "
                          f"(<= {newest})")
    return version


def arg_type(check: Callable[..., T], **kwargs: Any) -> Callable[[str], T]:
    """An ``argparse`` ``type=`` that runs a check of this module on the flag's text.

    ``argparse`` names the flag in its message itself (``argument --seed: ...``), so the
    check is given the name ``"value"``.

    Examples
    --------
    >>> parser.add_argument("--seed", type=arg_type(check_number, integer=True, lo=0))
    """

    def convert(text: str) -> T:
        try:
            return check(text, "value", **kwargs)
        except ZFocusError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(check, "__name__", "value")
    return convert


__all__ = [
    "check_entry_version",
    "arg_type",
    "check_choice",
    "check_interval",
    "check_number",
    "inside_folder",
]
