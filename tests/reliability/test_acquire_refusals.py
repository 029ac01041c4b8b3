"""``zfocus acquire`` refuses bad flags, files and sequences before anything moves."""

from __future__ import annotations

import pytest

pytest.importorskip("pymmcore_plus")
useq = pytest.importorskip("useq")

from _reliability import Snapshot, assert_refused, run_cli

from _acquire_fixtures import FAST, hardware_fixture  # noqa: F401 - fixtures


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["acquire", "--hours", "1"], ["--simulate"]),
        (["acquire", "--simulate", "--sequence", "s.yaml"], ["--sequence"]),
        (["acquire", "--simulate", "--autofocus", "none", "--model", "m.zfm"], ["--model"]),
        (["acquire", "--simulate", "--positions", "0"], ["--positions"]),
        (["acquire", "--simulate", "--interval-min", "0"], ["--interval-min"]),
        (["acquire", "--simulate", "--policy", "retry"], ["--policy"]),
    ],
)
def test_bad_flags_are_refused_in_one_line(argv, names):
    assert_refused(run_cli(*argv), *names)


def test_csv_that_is_not_a_focus_log_is_never_replaced(tmp_path):
    precious = tmp_path / "notes.csv"
    precious.write_text("my,data\n")
    snap = Snapshot(precious)
    assert_refused(run_cli("acquire", "--simulate", *FAST, "--csv", str(precious)), "--csv")
    snap.assert_unchanged()


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"--focus-preset": "Channel"}, ["--focus-preset"]),
        ({"--focus-preset": "Channel/DAPI"}, ["--focus-preset", "DAPI"]),
        ({"--focus-preset": "Optics/BF"}, ["--focus-preset", "Optics"]),
        ({"--output": "run.tif"}, ["--output"]),
        ({"--output": "run.ome.zarr"}, ["--output", ".ome.tif"]),
        ({"--sequence": "missing.yaml"}, ["--sequence"]),
    ],
)
def test_hardware_inputs_are_checked_before_the_run(hardware, tmp_path, change, names):
    scope, cfg, seq_file = hardware
    flags = {"--mm-config": str(cfg), "--sequence": str(seq_file),
             "--output": str(tmp_path / "run.ome.tif"), "--focus-preset": "Channel/BF"}
    flags.update({k: str(tmp_path / v) if k in ("--output", "--sequence") else v
                  for k, v in change.items()})
    argv = [x for kv in flags.items() for x in kv]
    assert_refused(run_cli("acquire", *argv), *names)
    assert scope.snaps == 0  # nothing was acquired


def test_an_existing_output_is_never_replaced(hardware, tmp_path):
    scope, cfg, seq_file = hardware
    out = tmp_path / "old.ome.tif"
    out.write_bytes(b"precious")
    snap = Snapshot(out)
    assert_refused(run_cli("acquire", "--mm-config", str(cfg), "--sequence", str(seq_file),
                           "--output", str(out)), "--output")
    snap.assert_unchanged()


def test_an_absolute_z_plan_is_refused(hardware, tmp_path):
    scope, cfg, _ = hardware
    seq_file = tmp_path / "abs.yaml"
    seq_file.write_text(useq.MDASequence(z_plan={"top": 2, "bottom": 0, "step": 1}).yaml())
    assert_refused(run_cli("acquire", "--mm-config", str(cfg), "--sequence", str(seq_file),
                           "--output", str(tmp_path / "x.ome.tif")), "absolute z plan")
