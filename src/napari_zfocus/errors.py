"""User-facing errors.

Every problem caused by input (a file, a CSV row, a model file, a setting) raises
:class:`ZFocusError` (or a subclass) with a one-line message naming the file and the
problem. The CLI prints it and exits with code 2; widgets show it as a napari notification.
"""

from __future__ import annotations

from os import PathLike


class ZFocusError(Exception):
    """An error the user can fix: bad input file, bad setting, tampered model."""


class StackError(ZFocusError):
    """A z-stack file or folder cannot be read or has the wrong shape or content."""


class DatasetError(ZFocusError):
    """``annotations.csv`` or one of the stacks it names is invalid.

    ``problems`` holds one message per bad row (``"annotations.csv line 4: ..."``).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class ModelFileError(ZFocusError):
    """A model or checkpoint file is missing, corrupt, tampered with or incompatible."""


def describe(path: str | PathLike[str], problem: str) -> str:
    """Format ``"<path>: <problem>"``, the shape of every file-related message."""
    return f"{path}: {problem}"
