"""``zfocus live``: hold focus with a model, on the simulated microscope or on hardware.

``zfocus live --simulate [--model MODEL] [--hours H] [--drift-um D] [--json] [--csv PATH]``
runs the paper's long time-lapse in simulation, headless and as fast as the CPU allows,
and scores the TRUE focus error of every frame. ``zfocus live --mm-config CFG`` runs the
same controller on a Micro-Manager configuration through pymmcore-plus.

With ``--json`` the last stdout line is one JSON object (keys: frames, within_1um,
max_abs_error_um, max_step_um, moves, holds, stage_range_um, wall_s, fps, ...).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

from napari_zfocus._json import to_json_line
from napari_zfocus.cli import _args
from napari_zfocus.cli._progress import progress_printer
from napari_zfocus.errors import ZFocusError

HELP = "hold focus live with a model (simulated microscope or pymmcore-plus hardware)"


def add_controller_arguments(p: argparse.ArgumentParser) -> None:
    """Controller knobs shared by ``live`` and ``demo``."""
    g = p.add_argument_group("controller")
    g.add_argument("--dead-band", type=_args.number(0.0, _args.MAX_DEAD_BAND_UM), default=0.5,
                   metavar="UM",
                   help="no move while |estimate - lock| <= UM (default 0.5; the paper used 1)")
    g.add_argument("--max-step", type=_args.number(0.0, _args.MAX_STEP_UM, lo_open=True),
                   default=3.0, metavar="UM",
                   help="largest single focus move (default 3)")
    g.add_argument("--gain", type=_args.number(0.0, 1.0, lo_open=True), default=1.0,
                   help="fraction of the error corrected, 0 < g <= 1 (default 1)")
    g.add_argument("--smoothing", type=_args.number(0.0, 1.0, hi_open=True), default=0.0,
                   help="exponential smoothing of estimates, 0..<1 (default 0)")
    g.add_argument("--min-confidence", type=_args.FRACTION, default=0.3,
                   help="hold below this prediction confidence, 0..1 (default 0.3)")
    g.add_argument("--z-limits", nargs=2, metavar=("LOW", "HIGH"), default=None,
                   action=_args.interval(-_args.MAX_Z_LIMIT_UM, _args.MAX_Z_LIMIT_UM),
                   help="absolute focus limits in um (default: the drive's limits)")


def controller_settings(args: argparse.Namespace):
    """Build :class:`ControllerSettings` from the parsed arguments (validated)."""
    from napari_zfocus.live.controller import ControllerSettings

    settings = ControllerSettings(
        dead_band_um=args.dead_band, max_step_um=args.max_step, gain=args.gain,
        smoothing=args.smoothing, min_confidence=args.min_confidence,
        z_limits_um=tuple(args.z_limits) if args.z_limits else None,
    )
    settings.validate()
    return settings


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``live`` sub-command."""
    p = subparsers.add_parser(
        "live",
        help=HELP,
        description=(
            "Lock the focus on the model's estimate and keep it there frame by frame "
            "(Wei & Roberts 2018). --simulate runs a headless experiment on the simulated "
            "microscope (thermal drift, growing yeast) with a simulated clock and reports "
            "the TRUE focus error; --mm-config runs on hardware through pymmcore-plus."
        ),
    )
    _args.add_microscope_arguments(p, "simulated microscope")
    p.add_argument("--oracle-noise", type=_args.number(0.0, _args.MAX_ORACLE_NOISE_UM),
                   default=None, metavar="UM",
                   help="simulation only: replace the model by the true defocus + UM noise "
                        "(checks the control loop without a network)")
    p.add_argument("--oracle-gain", type=_args.number(*_args.ORACLE_GAIN), default=None,
                   metavar="G",
                   help="with --oracle-noise: the estimate is G times the true defocus (a "
                        "model read at another condenser aperture; default 1)")
    p.add_argument("--hours", type=_args.number(0.0, _args.MAX_SIM_HOURS, lo_open=True),
                   default=1.0, help="simulated hours (default 1)")
    p.add_argument("--drift-um", type=_args.number(-_args.MAX_DRIFT_UM, _args.MAX_DRIFT_UM),
                   default=40.0,
                   help="net thermal drift over the session, um (default 40, the paper's 24 h)")
    p.add_argument("--interval-s", type=_args.number(*_args.INTERVAL_S), default=5.0,
                   help="seconds between frames (simulated, or real with --mm-config; default 5)")
    p.add_argument("--seed", type=_args.SEED, default=0, help="random seed (default 0)")
    p.add_argument("--scene", choices=("yeast", "pattern"), default="yeast",
                   help="simulated sample: yeast (bright-field simulator, default) or a fast "
                        "analytic pattern (only with --oracle-noise)")
    p.add_argument("--size", type=_args.integer(*_args.SIM_FRAME_PX), default=256,
                   help="simulated frame size, px (default 256)")
    p.add_argument("--pixel-size", type=_args.length_um(_args.SIM_PIXEL_SIZE_UM), default=0.24,
                   help="simulated pixel size, um (default 0.24)")
    p.add_argument("--frames", type=_args.integer(1, _args.MAX_LIVE_FRAMES), default=None,
                   help="--mm-config: stop after this many frames (default: until Ctrl-C)")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--csv", metavar="PATH", help="write the decision log as CSV")
    add_controller_arguments(p)
    p.set_defaults(func=run)
    return p


def _decision_line(done: int, total: int, decision: Any) -> str:
    """The progress line of a simulated session: its newest decision and true error."""
    return (f"  frame {done}/{total}: stage {decision.stage_z_um:+.2f} um, "
            f"true error {decision.true_defocus_um:+.2f} um, {decision.action} "
            f"({decision.reason})")


def announce_once(line: str):
    """Wrap a progress callback so ``line`` is printed with the first report: a session that
    fails while starting (bad model, bad pixel size) then prints its error line alone."""

    def wrap(progress):
        said = [False]

        def report(done: int, total: int, decision: Any) -> None:
            if not said[0]:
                said[0] = True
                print(line, file=sys.stderr, flush=True)
            progress(done, total, decision)

        return report

    return wrap


def format_summary(d: dict[str, Any]) -> list[str]:
    """Human-readable lines of a session summary."""
    holds = ", ".join(f"{k} {v}" for k, v in d["holds"].items()) or "none"
    lines = [
        f"frames: {d['frames']} ({d['hours']:g} simulated h) in {d['wall_s']:.1f} s "
        f"({d['fps']:.1f} frames/s)",
        f"true focus error: {100 * d['within_1um']:.2f} % of frames within +/-1 um, "
        f"mean |error| {d['mean_abs_error_um']:.2f} um, max {d['max_abs_error_um']:.2f} um",
        f"moves: {d['moves']} (largest {d['max_step_um']:.2f} um, limit "
        f"{d['max_step_limit_um']:g} um); holds: {holds}",
        f"stage range: {d['stage_range_um'][0]:+.2f} .. {d['stage_range_um'][1]:+.2f} um "
        f"(limits {d['z_limits_um'][0]:g} .. {d['z_limits_um'][1]:g}); sample range "
        f"{d['sample_range_um'][0]:+.2f} .. {d['sample_range_um'][1]:+.2f} um",
    ]
    if d["stopped"]:
        lines.append(f"SAFE STOP: {d['stop_reason']}")
    return lines


def run_simulation(args: argparse.Namespace) -> int:
    """``zfocus live --simulate``."""
    from napari_zfocus.live.headless import run_simulated_session
    from napari_zfocus.live.scenes import PatternRenderer
    from napari_zfocus.live.simulated_microscope import SimulatedMicroscopeSettings

    if args.scene == "pattern" and args.oracle_noise is None:
        raise ZFocusError("--scene pattern is a test pattern for --oracle-noise, not for a model")
    if args.oracle_gain is not None and args.oracle_noise is None:
        raise ZFocusError("--oracle-gain applies to the oracle: give --oracle-noise too")
    if args.size < 8 or not args.pixel_size > 0:
        raise ZFocusError(f"bad simulated field: {args.size} px at {args.pixel_size} um/px")
    shape = (args.size, args.size)
    renderer = None  # default: the bright-field yeast simulator
    if args.scene == "pattern":
        renderer = PatternRenderer(shape, args.pixel_size, seed=args.seed)
    settings = controller_settings(args)
    announce = announce_once(
        f"zfocus live: simulating {args.hours:g} h, drift {args.drift_um:g} um, one frame every "
        f"{args.interval_s:g} s"
    )
    result = run_simulated_session(
        args.model, hours=args.hours, drift_um=args.drift_um, frame_interval_s=args.interval_s,
        seed=args.seed, progress=announce(progress_printer(_decision_line)),
        oracle_noise_um=args.oracle_noise,
        oracle_gain=1.0 if args.oracle_gain is None else args.oracle_gain,
        renderer=renderer, controller_settings=settings,
        microscope_settings=SimulatedMicroscopeSettings(shape=shape, pixel_size_um=args.pixel_size),
    )
    summary = result.to_dict()
    for line in format_summary(summary):
        print(line, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(to_json_line(summary), flush=True)
    if args.csv:  # after the summary: a write that fails anyway (disk full) loses nothing else
        _export_csv(result.controller, args.csv)
    return 0


def run_hardware(args: argparse.Namespace) -> int:
    """``zfocus live --mm-config CFG``: the controller on real hardware."""
    from napari_zfocus.live.controller import FocusController
    from napari_zfocus.live.headless import check_pixel_size_fits, load_predictor
    from napari_zfocus.live.mmcore import MMCoreMicroscope, load_mmcore

    cfg = Path(args.mm_config)
    if not cfg.is_file():
        raise ZFocusError(f"{cfg}: Micro-Manager configuration not found")
    if args.oracle_noise is not None or args.oracle_gain is not None:
        raise ZFocusError("--oracle-noise and --oracle-gain need --simulate (hardware has no "
                          "ground truth)")
    predictor = load_predictor(args.model)
    core = load_mmcore(cfg)
    microscope = MMCoreMicroscope(core)
    check_pixel_size_fits(predictor, microscope.pixel_size_um)
    controller = FocusController(predictor, microscope, controller_settings(args))
    t0 = time.perf_counter()
    frames = 0
    try:
        controller.lock()
        print(f"zfocus live: locked at estimate {controller.locked_um:+.2f} um, "
              f"stage {microscope.get_z():+.2f} um; Ctrl-C to stop", file=sys.stderr, flush=True)
        frames = _hold_focus(controller, args.frames, args.interval_s)
    except KeyboardInterrupt:
        pass
    finally:
        microscope.close()
        if args.csv:
            _export_csv(controller, args.csv)
    wall = time.perf_counter() - t0
    summary = {**controller.summary(), "frames": frames, "wall_s": wall,
               "fps": frames / wall if wall > 0 else None}
    if args.json:
        print(to_json_line(summary), flush=True)
    return 1 if controller.stopped else 0


def _hold_focus(controller: Any, limit: int | None, interval_s: float) -> int:
    """Step the controller on hardware, one frame every ``interval_s`` s, printing each
    decision, until ``limit`` frames, a safe stop or Ctrl-C; returns the frame count."""
    from napari_zfocus.live.frame_loop import drive_frames

    frames = 0
    # The controller snaps each frame itself (the source yields None): a camera error is
    # then one of its counted failures, ending in a safe stop, not a crash of the loop.
    results = drive_frames(itertools.repeat(None), controller.step,
                           period_s=max(interval_s, 0.0))
    try:
        for result in results:
            d = result.output
            frames += 1
            print(f"{d.time_s:.2f} s: stage {d.stage_z_um:+.2f} um, estimate "
                  f"{d.estimate_um:+.2f} um, {d.action} ({d.reason})", file=sys.stderr, flush=True)
            if controller.stopped or frames == limit:
                break
    except KeyboardInterrupt:  # Ctrl-C is how a hardware session normally ends
        pass
    return frames


def check_csv(path: str) -> Path:
    """Refuse a ``--csv`` path before the session: a folder, an unwritable place, or an
    existing file that is not an earlier decision log (those are replaced)."""
    from napari_zfocus.live.controller import DECISION_COLUMNS
    from napari_zfocus.outputs import check_output_file, starts_with

    header = ",".join(DECISION_COLUMNS[:2]) + ","
    return check_output_file(path, "--csv", replaceable=starts_with(header.encode()),
                             kind="a zfocus decision log")


def _export_csv(controller: Any, path: str) -> None:
    try:
        controller.export_csv(path)
    except OSError as exc:
        raise ZFocusError(
            f"--csv {path}: cannot write the decision log ({exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> int:
    """Entry point of ``zfocus live``."""
    if not (args.simulate or args.mm_config):
        raise ZFocusError("choose a microscope: --simulate, or --mm-config CFG for hardware")
    if args.csv:
        check_csv(args.csv)  # before hours of session, not after
    if args.simulate:
        # A flag that would be ignored is refused: the user meant something by it.
        if args.frames is not None:
            raise ZFocusError("--frames applies to --mm-config; a simulation runs for --hours")
        if args.model is not None and args.oracle_noise is not None:
            raise ZFocusError("--oracle-noise replaces the model: give --model or --oracle-noise")
        return run_simulation(args)
    return run_hardware(args)
