"""The ``zfocus`` command line: a thin layer over the Qt-free core.

Each sub-command lives in its own module that defines ``add_parser(subparsers)``; the
parser it adds sets ``func`` to a callable ``(args) -> int`` returning the exit code.
User errors (:class:`~napari_zfocus.errors.ZFocusError`) print one line to stderr and
exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from napari_zfocus import __version__
from napari_zfocus.errors import ZFocusError

#: Sub-command modules, in the order ``zfocus --help`` lists them. Imported lazily so
#: that ``zfocus simulate`` never pays for importing torch or Qt.
COMMANDS: dict[str, str] = {
    "simulate": "napari_zfocus.cli.simulate",
    "suggest": "napari_zfocus.cli.suggest",
    "train": "napari_zfocus.cli.train",
    "eval": "napari_zfocus.cli.evaluate",
    "predict": "napari_zfocus.cli.predict",
    "bench": "napari_zfocus.cli.bench",
    "live": "napari_zfocus.cli.live",
    "demo": "napari_zfocus.cli.demo",
}

EXIT_USER_ERROR = 2


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser with the given sub-commands (default: all)."""
    parser = argparse.ArgumentParser(
        prog="zfocus",
        description="CNN software autofocus for bright-field microscopy (napari-zfocus).",
    )
    parser.add_argument("--version", action="version", version=f"zfocus {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ZFocusError as exc:
        print(f"zfocus {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"zfocus {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
