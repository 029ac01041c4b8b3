"""``zfocus acquire``: a multi-position time-lapse (pymmcore-plus MDA) with the autofocus.

``zfocus acquire --simulate [--model MODEL] [--positions P] [--hours H] [--interval-min M]
[--drift-um D] [--autofocus {zfocus,scan,none}] [--policy {hold,skip,scan}] [--seed S]
[--json] [--csv PATH]`` runs a real pymmcore-plus MDA on the simulated plate (a simulated
clock: a day takes minutes) and scores every acquired frame by its TRUE focus error. With
``--json`` the last stdout line is one JSON object with at least ``positions``,
``timepoints``, ``frames``, ``within_1um``, ``mean_abs_error_um``, ``max_abs_error_um``,
``focus_frames``, ``focus_frames_per_refocus``, ``max_step_um`` and ``skipped``.

``zfocus acquire --mm-config CFG --sequence SEQ.yaml --output OUT.ome.tif
[--focus-preset GROUP/PRESET]`` runs a useq sequence on real hardware with the autofocus
installed, writes the OME-TIFF with every frame's focus record, and restores the core's
engine afterwards.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from napari_zfocus._json import to_json_line
from napari_zfocus.cli import _args
from napari_zfocus.cli._progress import progress_printer
from napari_zfocus.errors import ZFocusError

HELP = "multi-position time-lapse (pymmcore-plus MDA) with one-frame autofocus"
MAX_POSITIONS = 96


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``acquire`` sub-command."""
    p = subparsers.add_parser(
        "acquire", help=HELP,
        description=(
            "Refocus each position at each time point of a multi-dimensional acquisition "
            "with ONE bright-field frame read by the model, instead of a 10-20 frame z-scan. "
            "--simulate runs a simulated plate; --mm-config runs a useq sequence on hardware."
        ),
    )
    _args.add_microscope_arguments(p, "simulated plate")
    p.add_argument("--autofocus", choices=("zfocus", "scan", "none"), default="zfocus",
                   help="zfocus: one CNN frame per refocus (default); scan: a z-scan like "
                        "Micro-Manager's OughtaFocus; none: no autofocus")
    p.add_argument("--policy", choices=("hold", "skip", "scan"), default="hold",
                   help="when a refocus finds no usable estimate: hold the last correction "
                        "(default), skip the position at that time point, or scan locally")
    p.add_argument("--max-step", type=_args.number(0.0, _args.MAX_STEP_UM, lo_open=True),
                   default=5.0, metavar="UM", help="largest single focus correction (default 5)")
    p.add_argument("--max-travel", type=_args.number(0.0, _args.MAX_Z_RANGE_UM, lo_open=True),
                   default=60.0, metavar="UM",
                   help="largest distance from a position's first focus (default 60)")
    p.add_argument("--min-confidence", type=_args.FRACTION, default=0.3,
                   help="hold below this prediction confidence, 0..1 (default 0.3)")
    g = p.add_argument_group("simulation (--simulate)")
    g.add_argument("--positions", type=_args.integer(1, MAX_POSITIONS), default=4,
                   help="stage positions (default 4)")
    g.add_argument("--hours", type=_args.number(0.0, _args.MAX_SIM_HOURS), default=24.0,
                   help="simulated hours (default 24)")
    g.add_argument("--interval-min", type=_args.number(0.0, 24 * 60.0, lo_open=True),
                   default=10.0, help="minutes between time points (default 10)")
    g.add_argument("--drift-um", type=_args.number(-_args.MAX_DRIFT_UM, _args.MAX_DRIFT_UM),
                   default=40.0, help="net thermal drift over the run, um (default 40)")
    g.add_argument("--seed", type=_args.SEED, default=0, help="random seed (default 0)")
    g.add_argument("--scene", choices=("yeast", "pattern"), default="yeast",
                   help="simulated sample: yeast (bright-field simulator, default) or a fast "
                        "analytic pattern (for checks of the acquisition itself)")
    g.add_argument("--size", type=_args.integer(*_args.SIM_FRAME_PX), default=256,
                   help="simulated frame size, px (default 256)")
    h = p.add_argument_group("hardware (--mm-config)")
    h.add_argument("--sequence", metavar="SEQ.yaml", help="useq MDASequence (YAML or JSON)")
    h.add_argument("--output", metavar="OUT.ome.tif",
                   help="where pymmcore-plus writes the images (OME-TIFF; several positions: "
                        "a folder of one file each); every frame's focus record is added")
    h.add_argument("--focus-preset", metavar="GROUP/PRESET",
                   help="config preset of the focus frame, e.g. Channel/BF (default: the "
                        "current channel)")
    h.add_argument("--focus-exposure", type=_args.number(0.0, 60_000.0, lo_open=True),
                   default=None, metavar="MS", help="exposure of the focus frame, ms")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--csv", metavar="PATH", help="write the focus log (one row per refocus)")
    p.set_defaults(func=run)
    return p


def _settings(args: argparse.Namespace, group: str | None, preset: str | None) -> Any:
    from napari_zfocus.acquisition.settings import AutofocusSettings

    settings = AutofocusSettings(
        focus_group=group, focus_preset=preset, focus_exposure_ms=args.focus_exposure,
        method=args.autofocus, policy=args.policy, max_step_um=args.max_step,
        max_travel_um=args.max_travel, min_confidence=args.min_confidence,
    )
    settings.validate()
    return settings


def _predictor(args: argparse.Namespace, pixel_size_um: float) -> Any:
    """The model (loaded once), checked against the camera's pixel size; None for scan/none."""
    if args.autofocus != "zfocus":
        if args.model is not None:
            raise ZFocusError(f"--model is not used by --autofocus {args.autofocus}")
        return None
    from napari_zfocus.live.headless import check_pixel_size_fits, load_predictor

    predictor = load_predictor(args.model)
    check_pixel_size_fits(predictor, pixel_size_um)
    return predictor


def _check_csv(path: str) -> None:
    from napari_zfocus.acquisition.focus_log import HEADER_START
    from napari_zfocus.outputs import check_output_file, starts_with

    check_output_file(path, "--csv", replaceable=starts_with(HEADER_START.encode()),
                      kind="a zfocus focus log")


def _write_csv(path: str, records: list[Any]) -> None:
    from napari_zfocus.acquisition.focus_log import write_focus_log

    try:
        write_focus_log(path, records)
    except OSError as exc:
        raise ZFocusError(f"--csv {path}: cannot write the focus log "
                          f"({exc.strerror or exc})") from None


def _frame_line(done: int, total: int, record: Any) -> str:
    """The progress line of a simulated acquisition: frames so far and the last refocus."""
    what = "" if record is None else (
        f"; last refocus p{record.p} t{record.t}: {record.decision}, "
        f"{record.focus_frames} frame(s), correction {record.correction_um:+.2f} um")
    return f"  frame {done}/{total}{what}"


def format_summary(d: dict[str, Any]) -> list[str]:
    """Human-readable lines of a simulated acquisition's summary."""
    within = d["within_1um"]
    lines = [
        f"{d['frames']} frames of {d['positions']} positions x {d['timepoints']} time points "
        f"in {d['wall_s']:.1f} s; autofocus {d['autofocus']} (policy {d['policy']})",
    ]
    if within is not None:
        lines.append(f"true focus error: {100 * within:.2f} % of frames within +/-1 um, mean "
                     f"{d['mean_abs_error_um']:.2f} um, max {d['max_abs_error_um']:.2f} um")
    per = d["focus_frames_per_refocus"]
    lines.append(f"focus frames: {d['focus_frames']} for {d['refocuses']} refocuses"
                 + (f" ({per:.2f} per refocus)" if per is not None else "")
                 + f"; largest step {d['max_step_um']:.2f} um; skipped {d['skipped']}")
    if d.get("refocus_added_ms_median") is not None:
        lines.append(f"time added per refocus (without camera and settling): median "
                     f"{d['refocus_added_ms_median']:.1f} ms, 95th percentile "
                     f"{d['refocus_added_ms_p95']:.1f} ms")
    return lines


def run_simulation(args: argparse.Namespace) -> int:
    """``zfocus acquire --simulate``."""
    from napari_zfocus.acquisition.simulated_run import (
        FOCUS_GROUP,
        FOCUS_PRESET,
        SimulatedAcquisition,
        run_simulated_acquisition,
    )

    for flag in ("sequence", "output", "focus_preset", "focus_exposure"):
        if getattr(args, flag) is not None:
            raise ZFocusError(f"--{flag.replace('_', '-')} applies to --mm-config; "
                              "--simulate builds its own plate and sequence")
    from napari_zfocus.acquisition.simulated_scope import SimulatedScopeSettings

    scope = SimulatedScopeSettings(shape=(args.size, args.size),
                                   renderer="simulator" if args.scene == "yeast" else "pattern")
    request = SimulatedAcquisition(positions=args.positions, hours=args.hours,
                                   interval_min=args.interval_min, drift_um=args.drift_um,
                                   seed=args.seed, scope=scope)
    request.validate()
    predictor = _predictor(args, request.scope.pixel_size_um)
    settings = _settings(args, FOCUS_GROUP, FOCUS_PRESET)
    print(f"zfocus acquire: simulating {args.positions} positions for {args.hours:g} h, one "
          f"time point every {args.interval_min:g} min, drift {args.drift_um:g} um",
          file=sys.stderr, flush=True)
    result = run_simulated_acquisition(predictor, request, settings,
                                       progress=progress_printer(_frame_line))
    summary = result.summary
    for line in format_summary(summary):
        print(line, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(to_json_line(summary), flush=True)
    if args.csv:
        _write_csv(args.csv, result.records)
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point of ``zfocus acquire``."""
    if not (args.simulate or args.mm_config):
        raise ZFocusError("choose a microscope: --simulate, or --mm-config CFG for hardware")
    if args.csv:
        _check_csv(args.csv)  # before hours of acquisition, not after
    if args.simulate:
        return run_simulation(args)
    from napari_zfocus.cli._acquire_hardware import run_hardware

    return run_hardware(args, settings_for=_settings, predictor_for=_predictor,
                        write_csv=_write_csv)


__all__ = ["add_parser", "format_summary", "run"]
