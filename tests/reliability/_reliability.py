"""Shared harness of the reliability suite: run a command as a hostile user would, then
check the promise every refusal keeps.

The promise (issue "Safe at a real microscope"): a bad input or a fault gives exit code 2,
exactly ONE line on stderr that names the file or flag at fault, no traceback, and leaves
every file the user had exactly as it was.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from napari_zfocus.cli import main


@dataclass
class CliResult:
    """Exit code and captured output of one ``zfocus`` command."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def run_cli(*argv: object) -> CliResult:
    """Run ``zfocus ARGV`` in this process (fast: torch is already imported)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse exits by itself
            code = exc.code if isinstance(exc.code, int) else 1
    return CliResult(int(code), out.getvalue(), err.getvalue())


def run_cli_process(*argv: object, timeout: float = 120, **kwargs: object) -> CliResult:
    """Run ``python -m napari_zfocus.cli ARGV`` in a child process (slow; for exits,
    signals and anything that must not share this interpreter)."""
    env = dict(os.environ, ZFOCUS_NO_TCMALLOC="1")
    proc = subprocess.run(
        [sys.executable, "-m", "napari_zfocus.cli", *map(str, argv)],
        capture_output=True, text=True, timeout=timeout, env=env, **kwargs,  # type: ignore[arg-type]
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_refused(result: CliResult, *names: object) -> str:
    """Exit code 2, one stderr line, no traceback, and the line names each of ``names``.

    Returns the line, for further checks.
    """
    assert "Traceback" not in result.err, result.err
    assert result.code == 2, f"exit {result.code}; stderr: {result.err!r}"
    lines = result.err_lines
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    line = lines[0]
    for name in names:
        assert str(name) in line, f"{name!s} not named in {line!r}"
    return line


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Snapshot:
    """The bytes of every file under some paths, to prove a refusal touched nothing.

    Examples
    --------
    >>> snap = Snapshot(dataset_dir, model_file)
    >>> assert_refused(run_cli("train", ...), "--out")
    >>> snap.assert_unchanged()
    """

    def __init__(self, *paths: Path) -> None:
        self.paths = [Path(p) for p in paths]
        self.before = self._take()

    def _take(self) -> dict[Path, str]:
        files: dict[Path, str] = {}
        for p in self.paths:
            if p.is_dir():
                for f in sorted(p.rglob("*")):
                    if f.is_file():
                        files[f] = _digest(f)
            elif p.is_file():
                files[p] = _digest(p)
        return files

    def assert_unchanged(self) -> None:
        after = self._take()
        added = sorted(set(after) - set(self.before))
        removed = sorted(set(self.before) - set(after))
        changed = sorted(f for f in set(after) & set(self.before) if after[f] != self.before[f])
        assert not (added or removed or changed), (
            f"files changed: added {added}, removed {removed}, changed {changed}"
        )
