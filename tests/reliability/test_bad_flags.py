"""Every flag of every command refuses a bad value while the command line is parsed.

A hostile user types negative seeds, zero counts, NaN, infinities, words, inverted or
absurd ranges and unknown devices: each is refused before any work (exit 2, ONE line on
stderr naming the flag, no traceback) and nothing is written. Values at the bounds are
still accepted, and argparse's own errors (unknown command, missing argument) are one
line too. An unexpected exception (a bug) is one line and exit code 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _reliability import assert_refused, run_cli

from napari_zfocus.cli import build_parser

#: Placeholder paths: a flag is refused while parsing, before any path is looked at.
MODEL, DATA, IMAGE = "no_model.zfm", "no_dataset", "no_image.tif"

#: Command prefixes that parse (their positional arguments and required flags).
PREFIX: dict[str, list[str]] = {
    "simulate": ["simulate", "OUTDIR"],
    "suggest": ["suggest", IMAGE],
    "train": ["train", DATA, "--out", "OUT.zfm"],
    "eval": ["eval", MODEL, DATA],
    "predict": ["predict", MODEL, IMAGE],
    "rescale": ["rescale", MODEL, IMAGE, "--out", "OUT.zfm"],
    "bench": ["bench", MODEL],
    "live": ["live", "--simulate"],
    "demo": ["demo", "--headless"],
}

#: Not integers at all, for every integer flag.
NOT_INT = ["1.5", "abc", "nan", ""]
#: Not finite numbers, for every real-valued flag.
NOT_FINITE = ["nan", "inf", "-inf", "abc"]

#: (command, flag, bad values): one parametrized case per value.
BAD: list[tuple[str, str, list[str]]] = [
    # simulate
    ("simulate", "--stacks", ["0", "-3", "100001", *NOT_INT]),
    ("simulate", "--seed", ["-1", "4294967296", "1e30", *NOT_INT]),
    ("simulate", "--slices", ["1", "2", "0", "1002", "x"]),
    ("simulate", "--size", ["8", "0", "5000", "1e9"]),
    ("simulate", "--pixel-size", ["0", "-0.24", "10", "0.001", *NOT_FINITE]),
    ("simulate", "--z-step", ["0", "-1", "100", "0.001", "nan"]),
    ("simulate", "--focus-index", ["-1", "1.5"]),
    ("simulate", "--cells", ["0", "5,1", "1,2,3", "a,b", "nan", "-5", "20000"]),
    ("simulate", "--ceiling-fraction", ["1.5", "-0.1,0.2", "0.5,0.2"]),
    ("simulate", "--condenser-na", ["0", "2", "0.3,1.6"]),
    ("simulate", "--photons", ["0", "1e8", "100,10", "inf"]),
    ("simulate", "--grow-hours", ["-1", "100", "3,1"]),
    ("simulate", "--source-points", ["0", "2000"]),
    ("simulate", "--workers", ["0", "300", "-2"]),
    # suggest
    ("suggest", "--z-step", ["0", "-1", "1000", *NOT_FINITE]),
    ("suggest", "--pixel-size", ["0", "1e5", "nan"]),
    ("suggest", "--channel", ["-1", *NOT_INT]),
    ("suggest", "--timepoint", ["-1", "0.5"]),
    ("suggest", "--series", ["-2", "x"]),
    # train
    ("train", "--minutes", ["0", "-5", "1e9", *NOT_FINITE]),
    ("train", "--steps", ["0", "-1", "1e9", "1.5"]),
    ("train", "--batch", ["0", "5000", "x"]),
    ("train", "--lr", ["0", "-1e-3", "2", "nan"]),
    ("train", "--label-sigma-um", ["-1", "1000", "nan"]),
    ("train", "--seed", ["-1", "4294967296", "0.5"]),
    ("train", "--bin-um", ["0", "1e-7", "1000", "nan"]),
    ("train", "--pixel-size-um", ["0", "1e-5", "1000"]),
    ("train", "--field-um", ["0", "1e6", "-60"]),
    ("train", "--dropout", ["1", "1.5", "-0.1"]),
    ("train", "--val-fraction", ["1", "-0.1", "nan"]),
    ("train", "--validate-every", ["-1", "1.5"]),
    ("train", "--checkpoint-every", ["-1"]),
    ("train", "--device", ["bogus", "cuda:x", "gpu", "cpu:0", ""]),
    ("train", "--threads", ["0", "257", "-1"]),
    ("train", "--init", ["bogus"]),
    # eval
    ("eval", "--device", ["bogus", "cuda:-1"]),
    ("eval", "--crops", ["corners"]),
    # predict
    ("predict", "--pixel-size", ["0", "-1", "1e6", "nan"]),
    ("predict", "--slice", ["-1", "1.5", "x"]),
    ("predict", "--device", ["bogus"]),
    # rescale
    ("rescale", "--z-step", ["0", "-1", "1000", *NOT_FINITE]),
    ("rescale", "--pixel-size", ["0", "1e5", "nan"]),
    ("rescale", "--device", ["bogus"]),
    # bench
    ("bench", "--frames", ["0", "-1", "1e7"]),
    ("bench", "--warmup", ["-1"]),
    ("bench", "--threads", ["0"]),
    ("bench", "--device", ["tpu"]),
    ("bench", "--allocator", ["jemalloc"]),
    # live (and the controller flags it shares with demo)
    ("live", "--hours", ["0", "-1", "1e6"]),
    ("live", "--drift-um", ["1e6", "nan"]),
    ("live", "--interval-s", ["0", "-5", "1e5"]),
    ("live", "--seed", ["-1"]),
    ("live", "--size", ["8"]),
    ("live", "--pixel-size", ["0", "100"]),
    ("live", "--frames", ["0"]),
    ("live", "--oracle-noise", ["-1", "1e3"]),
    ("live", "--oracle-gain", ["0", "-1", "100", "nan"]),
    ("live", "--scene", ["forest"]),
    ("live", "--dead-band", ["-1", "100"]),
    ("live", "--max-step", ["0", "-3", "1000"]),
    ("live", "--gain", ["0", "2", "-1"]),
    ("live", "--smoothing", ["1", "-0.5"]),
    ("live", "--min-confidence", ["1.5", "-0.1"]),
    # demo
    ("demo", "--minutes", ["0", "-10", "1e9"]),
    ("demo", "--interval-s", ["0"]),
    ("demo", "--drift-um", ["inf"]),
    ("demo", "--oracle-noise", ["-1"]),
    ("demo", "--seed", ["-5"]),
    ("demo", "--gain", ["3"]),
]

CASES = [
    pytest.param(command, flag, value, id=f"{command} {flag}={value or 'EMPTY'}")
    for command, flag, values in BAD
    for value in values
]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, so a refusal that wrote anything is caught."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("command", "flag", "value"), CASES)
def test_bad_value_is_refused_naming_the_flag(command: str, flag: str, value: str,
                                              tmp_path: Path) -> None:
    # --flag=value: a value starting with "-" is then never mistaken for a flag.
    line = assert_refused(run_cli(*PREFIX[command], f"{flag}={value}"), flag)
    assert line.startswith(f"zfocus {command}: error: argument {flag}")
    assert not any(tmp_path.iterdir()), "a refused command wrote something"


#: Two-number flags: (command, flag, LOW, HIGH).
BAD_PAIRS = [
    ("train", "--z-range", "5", "-5"),  # decreasing
    ("train", "--z-range", "0", "0"),  # empty
    ("train", "--z-range", "-5000", "5"),  # beyond any defocus
    ("train", "--z-range", "nan", "5"),
    ("train", "--z-range", "-5", "inf"),
    ("train", "--z-range", "a", "b"),
    ("live", "--z-limits", "10", "1"),
    ("live", "--z-limits", "-100000", "0"),  # beyond any focus drive
    ("live", "--z-limits", "nan", "1"),
    ("demo", "--z-limits", "5", "5"),
]


@pytest.mark.parametrize(("command", "flag", "low", "high"), BAD_PAIRS,
                         ids=[f"{c} {f} {lo} {hi}" for c, f, lo, hi in BAD_PAIRS])
def test_bad_interval_is_refused(command: str, flag: str, low: str, high: str,
                                 tmp_path: Path) -> None:
    assert_refused(run_cli(*PREFIX[command], flag, low, high), flag)
    assert not any(tmp_path.iterdir())


def test_flag_without_its_value_is_one_line() -> None:
    assert_refused(run_cli(*PREFIX["train"], "--seed"), "--seed")
    assert_refused(run_cli(*PREFIX["train"], "--z-range", "1"), "--z-range")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        ([], "command is required"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["train"], "DATASET"),  # required positional and --out missing
        (["train", "ds"], "--out"),
        (["predict", MODEL, IMAGE, "--no-such-flag"], "--no-such-flag"),
        (["suggest"], "STACK"),
        (["rescale", MODEL, "--out", "never.zfm"], "STACK"),  # nor --condenser-na
        (["rescale", MODEL, IMAGE], "--out"),
    ],
    ids=["no command", "unknown command", "train bare", "train no --out", "unknown flag",
         "suggest bare", "rescale no stack", "rescale no --out"],
)
def test_argparse_errors_are_one_line(argv: list[str], named: str) -> None:
    line = assert_refused(run_cli(*argv), named)
    assert "usage:" not in line


def test_values_at_the_bounds_parse() -> None:
    """The bounds are inclusive where stated: the edges themselves are accepted."""
    parse = build_parser().parse_args
    args = parse([*PREFIX["train"], "--seed", "4294967295", "--minutes", "10080",
                  "--dropout", "0", "--val-fraction", "0", "--validate-every", "0",
                  "--z-range", "-1000", "1000", "--device", "CUDA:1", "--threads", "256"])
    assert args.seed == 4294967295 and args.z_range == (-1000.0, 1000.0)
    assert args.device == "CUDA:1" and args.validate_every == 0
    args = parse([*PREFIX["simulate"], "--slices", "3", "--cells", "1:10000",
                  "--pixel-size", "0.02", "--z-step", "20", "--grow-hours", "0,72"])
    assert args.slices == 3 and args.cells == (1.0, 10000.0) and args.grow_hours == (0.0, 72.0)
    args = parse([*PREFIX["live"], "--gain", "1", "--smoothing", "0", "--min-confidence", "1",
                  "--z-limits", "-50000", "50000", "--dead-band", "0", "--drift-um", "-1000"])
    assert args.z_limits == (-50000.0, 50000.0) and args.drift_um == -1000.0
    args = parse([*PREFIX["predict"], "--slice", "0", "--pixel-size", "0.01", "--device", "auto"])
    assert args.slice == 0 and args.pixel_size == 0.01


def test_defaults_are_unchanged() -> None:
    """Scripts rely on the defaults: the typed flags keep them."""
    parse = build_parser().parse_args
    sim = parse(PREFIX["simulate"])
    assert (sim.stacks, sim.seed, sim.slices, sim.size, sim.pixel_size, sim.z_step) == (
        10, 0, 31, 320, 0.24, 1.0)
    assert sim.cells == (15.0, 300.0) and sim.grow_hours == 0.0
    train = parse(PREFIX["train"])
    assert train.device == "auto" and train.seed == 0 and train.z_range is None
    live = parse(PREFIX["live"])
    assert (live.hours, live.drift_um, live.interval_s, live.size, live.pixel_size) == (
        1.0, 40.0, 5.0, 256, 0.24)
    assert (live.dead_band, live.max_step, live.gain, live.min_confidence) == (0.5, 3.0, 1.0, 0.3)
    assert parse(PREFIX["predict"]).device is None


def test_internal_error_is_one_line_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (not a user error) is one line naming the exception, exit code 1."""
    from napari_zfocus.cli import suggest

    def boom(args: object) -> int:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(suggest, "run", boom)
    monkeypatch.delenv("ZFOCUS_DEBUG", raising=False)
    result = run_cli("suggest", IMAGE)
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err_lines == [(
        "zfocus suggest: internal error: RuntimeError: boom second line "
        "(set ZFOCUS_DEBUG=1 for the traceback)"
    )]
    monkeypatch.setenv("ZFOCUS_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        run_cli("suggest", IMAGE)


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_zfocus.cli import suggest

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(suggest, "run", interrupted)
    result = run_cli("suggest", IMAGE)
    assert result.code == 130 and result.err_lines == ["zfocus suggest: interrupted"]


def test_closed_stdout_pipe_exits_quietly_141(tmp_path: Path) -> None:
    """``zfocus suggest --json X | true``: the reader is gone before anything is written.
    A quiet exit as for a tool killed by SIGPIPE: 141, nothing on stderr."""
    import os
    import subprocess
    import sys

    import numpy as np

    from napari_zfocus.data import write_stack

    stack = tmp_path / "s.tif"
    data = np.random.default_rng(0).integers(100, 4000, (7, 64, 64), dtype=np.uint16)
    write_stack(stack, data, z_step_um=1.0, pixel_size_um=0.24)
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the child starts: its first write fails for sure
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "napari_zfocus.cli", "suggest", "--json", str(stack)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
            env=dict(os.environ, ZFOCUS_NO_TCMALLOC="1"))
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, "")


@pytest.mark.parametrize("model", ["nope.zfm", "DIR"])
def test_demo_with_a_bad_model_prints_only_its_error(model: str, tmp_path: Path) -> None:
    """The banner comes with the first frame: a session that cannot start is one line."""
    path = tmp_path if model == "DIR" else tmp_path / model
    assert_refused(run_cli("demo", "--headless", "--model", path, "--minutes", "0.1"), path)


@pytest.mark.parametrize("flag", [["--json"], ["--minutes", "5"], ["--oracle-noise", "0.1"]],
                         ids=lambda f: f[0])
def test_demo_refuses_headless_flags_without_headless(flag: list[str]) -> None:
    assert_refused(run_cli("demo", *flag), flag[0], "only applies to --headless")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland displays")
def test_demo_without_a_display_is_refused_not_aborted_by_qt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_zfocus.cli.demo import check_gui_possible

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert_refused(run_cli("demo"), "no display", "--headless")
    # An off-screen Qt platform needs no display: the GUI may start.
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    check_gui_possible(build_parser().parse_args(["demo"]))


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["live", "--simulate", "--frames", "10"], "--frames"),
        (["live", "--simulate", "--model", "m.zfm", "--oracle-noise", "0.1"], "--oracle-noise"),
        (["live", "--simulate", "--oracle-gain", "0.8"], "--oracle-gain"),
        (["eval", "m.zfm", "ds", "--baseline-fit", "ds"], "--baseline-fit"),
    ],
    ids=["live-frames-with-simulate", "live-model-and-oracle", "live-gain-without-oracle",
         "eval-fit-without-baselines"],
)
def test_a_flag_that_would_be_ignored_is_refused(argv: list[str], named: str) -> None:
    assert_refused(run_cli(*argv), named)
