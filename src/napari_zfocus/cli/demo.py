"""``zfocus demo``: the live autofocus on the simulated microscope.

Without ``--headless`` it opens napari with the live-autofocus dock widget on a simulated
microscope. With ``--headless`` it runs a short simulated session (10 simulated minutes by
default, a few hundred frames) and prints what happened.
"""

from __future__ import annotations

import argparse
import os
import sys

from napari_zfocus._json import to_json_line
from napari_zfocus.cli import _args
from napari_zfocus.cli.live import (
    add_controller_arguments,
    announce_once,
    controller_settings,
    format_summary,
)
from napari_zfocus.errors import ZFocusError

HELP = "try the live autofocus on the simulated microscope (napari, or --headless)"
#: The flags only --headless uses, with their defaults: given without it, they are refused
#: instead of ignored.
HEADLESS_DEFAULTS = {"minutes": 10.0, "interval_s": 2.0, "drift_um": 10.0,
                     "oracle_noise": None, "json": False}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo`` sub-command."""
    p = subparsers.add_parser(
        "demo",
        help=HELP,
        description=(
            "Open napari with the live-autofocus dock on a simulated microscope whose sample "
            "drifts and grows; --headless runs a short simulated session instead and prints "
            "frames, true focus error and moves."
        ),
    )
    p.add_argument("--headless", action="store_true", help="no GUI: run a short session")
    p.add_argument("--model", metavar="MODEL", help="model file (default: the demo model)")
    p.add_argument("--minutes", type=_args.number(0.0, 60 * _args.MAX_SIM_HOURS, lo_open=True),
                   default=HEADLESS_DEFAULTS["minutes"],
                   help="--headless: simulated minutes (default 10)")
    p.add_argument("--interval-s", type=_args.number(*_args.INTERVAL_S),
                   default=HEADLESS_DEFAULTS["interval_s"],
                   help="--headless: simulated seconds between frames (default 2)")
    p.add_argument("--drift-um", type=_args.number(-_args.MAX_DRIFT_UM, _args.MAX_DRIFT_UM),
                   default=HEADLESS_DEFAULTS["drift_um"],
                   help="--headless: net drift over the session, um (default 10)")
    p.add_argument("--oracle-noise", type=_args.number(0.0, _args.MAX_ORACLE_NOISE_UM),
                   default=None, metavar="UM",
                   help="--headless: use the true defocus + UM noise instead of a model")
    p.add_argument("--seed", type=_args.SEED, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="--headless: JSON summary as last line")
    add_controller_arguments(p)
    p.set_defaults(func=run)
    return p


def run_headless(args: argparse.Namespace) -> int:
    """Short simulated session, printed."""
    from napari_zfocus.live.headless import run_simulated_session

    # Printed with the first frame: a session that cannot start (bad --model) prints its
    # error line alone.
    announce = announce_once(
        f"zfocus demo: {args.minutes:g} simulated minutes, one frame every "
        f"{args.interval_s:g} s, drift {args.drift_um:g} um")
    result = run_simulated_session(
        args.model, hours=args.minutes / 60.0, drift_um=args.drift_um,
        frame_interval_s=args.interval_s, seed=args.seed, oracle_noise_um=args.oracle_noise,
        controller_settings=controller_settings(args), progress=announce(_no_progress),
    )
    summary = result.to_dict()
    for line in format_summary(summary):
        print(line, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(to_json_line(summary), flush=True)
    return 0


def build_demo(viewer, model_path=None, *, start_live: bool = True):
    """Dock the live-autofocus widget on a simulated microscope and start the live view.

    Returns the widget. Separate from :func:`run_gui` so tests can drive it on a test
    viewer.
    """
    from napari_zfocus._qt.live_widget import LiveAutofocusWidget  # lazy: headless needs no Qt

    widget = LiveAutofocusWidget(viewer, microscope=None, model_path=model_path)
    viewer.window.add_dock_widget(widget, name="Live autofocus", area="right")
    if start_live:
        widget.start_live()
    return widget


def run_gui(args: argparse.Namespace) -> int:  # pragma: no cover - needs a display
    """napari with the live-autofocus dock on a simulated microscope."""
    import napari  # lazy: the headless path must not need Qt

    viewer = napari.Viewer(title="zfocus demo: live autofocus (simulated microscope)")
    build_demo(viewer, args.model)
    napari.run()
    return 0


def _no_progress(done: int, total: int, decision: object) -> None:
    """The headless demo prints no progress lines, only its summary."""


def check_gui_possible(args: argparse.Namespace) -> None:
    """Refuse, before Qt aborts the process, a GUI demo that cannot open a window, and
    flags that only apply to --headless."""
    for dest, default in HEADLESS_DEFAULTS.items():
        if getattr(args, dest) != default:
            flag = "--" + dest.replace("_", "-")
            raise ZFocusError(f"{flag}: only applies to --headless")
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    windowed = platform == "" or platform.startswith(("xcb", "wayland"))
    if (sys.platform.startswith("linux") and windowed
            and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))):
        raise ZFocusError("no display: use --headless")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``zfocus demo``."""
    if args.headless:
        return run_headless(args)
    check_gui_possible(args)
    return run_gui(args)
