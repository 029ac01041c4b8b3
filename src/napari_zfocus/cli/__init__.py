"""The ``zfocus`` command line: a thin layer over the Qt-free core.

Each sub-command lives in its own module that defines ``add_parser(subparsers)``; the
parser it adds sets ``func`` to a callable ``(args) -> int`` returning the exit code.
User errors (:class:`~napari_zfocus.errors.ZFocusError`) and bad flags print one line to
stderr and exit with code 2; an unexpected exception (a bug) prints one line and exits with
code 1 (``ZFOCUS_DEBUG=1`` shows its traceback); Ctrl-C exits with 130; a closed stdout pipe
(``zfocus suggest --json X | head -c 1``) exits quietly with 141, as a tool killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from napari_zfocus import __version__
from napari_zfocus.errors import ZFocusError

#: Sub-command modules, in the order ``zfocus --help`` lists them. Imported lazily so
#: that ``zfocus simulate`` never pays for importing torch or Qt.
COMMANDS: dict[str, str] = {
    "simulate": "napari_zfocus.cli.simulate",
    "suggest": "napari_zfocus.cli.suggest",
    "train": "napari_zfocus.cli.train",
    "eval": "napari_zfocus.cli.evaluate",
    "calibrate": "napari_zfocus.cli.calibrate",
    "rescale": "napari_zfocus.cli.rescale",
    "predict": "napari_zfocus.cli.predict",
    "bench": "napari_zfocus.cli.bench",
    "live": "napari_zfocus.cli.live",
    "acquire": "napari_zfocus.cli.acquire",
    "demo": "napari_zfocus.cli.demo",
}

EXIT_USER_ERROR = 2
#: Exit code of an unexpected exception (a bug), as Python's own.
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130
#: Exit code when the reader of stdout has gone: what the shell reports for a tool that
#: SIGPIPE killed in the same place (``yes | head -1``), so pipelines see the same.
EXIT_BROKEN_PIPE = 141
#: Set to 1 to get the traceback of an internal error instead of its one-line summary.
DEBUG_ENV = "ZFOCUS_DEBUG"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are ONE line on stderr, exit code 2.

    argparse prints its usage block before the message; the CLI promises one line that
    names the flag (``zfocus train: error: argument --seed: ...``). ``--help`` still prints
    the full usage.
    """

    def error(self, message: str) -> NoReturn:
        if message.endswith("required: COMMAND"):
            message = f"a command is required, one of: {', '.join(COMMANDS)}"
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {_one_line(message)}\n")


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser with the given sub-commands (default: all)."""
    parser = OneLineParser(
        prog="zfocus",
        description="CNN software autofocus for bright-field microscopy (napari-zfocus).",
    )
    parser.add_argument("--version", action="version", version=f"zfocus {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name in commands or COMMANDS:
        module = importlib.import_module(COMMANDS[name])
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zfocus`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Only import the module of the command that runs (fast start, no torch for simulate).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    commands = [chosen] if chosen in COMMANDS else None
    parser = build_parser(commands)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a refused flag (2), --help or --version (0)
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        return EXIT_USER_ERROR
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except ZFocusError as exc:
        print(f"zfocus {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"zfocus {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line, not a traceback, unless debugging
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        detail = _one_line(str(exc)) or "(no message)"
        print(
            f"zfocus {args.command}: internal error: {type(exc).__name__}: {detail} "
            f"(set {DEBUG_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


def _stdout_closed() -> int:
    """A quiet exit when stdout's reader has gone (no traceback, no "internal error").

    As the Python docs recommend, stdout is pointed at devnull: the flush at interpreter
    exit would otherwise fail again and print "Exception ignored ... BrokenPipeError".
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):  # not a real file
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
