"""``zfocus acquire``: the simulated plate and the hardware path (on a simulated core)."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("pymmcore_plus")
useq = pytest.importorskip("useq")

from _acquire_fixtures import FAST, ScopeTruth, hardware_fixture, truth_model_fixture  # noqa: F401 - fixtures
from napari_zfocus.acquisition.focus_log import HEADER_START
from napari_zfocus.cli import main

KEYS = ("positions", "timepoints", "frames", "within_1um", "mean_abs_error_um",
        "max_abs_error_um", "focus_frames", "focus_frames_per_refocus", "max_step_um", "skipped")


def run_json(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_simulated_acquisition_json_has_the_contract_keys(truth_model, tmp_path, capsys):
    log = tmp_path / "focus.csv"
    summary = run_json(capsys, "acquire", "--simulate", *FAST, "--json", "--csv", str(log))
    assert all(k in summary for k in KEYS)
    assert summary["positions"] == 2 and summary["timepoints"] == 4
    assert summary["frames"] == 2 * 4 * 2  # positions x time points x (BF, FL)
    assert summary["within_1um"] == 1.0
    assert summary["focus_frames"] == 2 * 3 + 2 * 3  # a 3-frame lock, then one per refocus
    assert summary["max_step_um"] <= 5.0 and summary["skipped"] == 0
    text = log.read_text()
    assert text.startswith(HEADER_START) and len(text.splitlines()) == 1 + 8


def test_no_autofocus_drifts_and_scan_costs_many_frames(truth_model, capsys):
    none = run_json(capsys, "acquire", "--simulate", *FAST[:-1], "12", "--autofocus", "none",
                    "--json")
    assert none["focus_frames"] == 0 and none["refocuses"] == 0
    assert none["max_abs_error_um"] > 3.0  # 12 um of drift, nothing corrected
    scan = run_json(capsys, "acquire", "--simulate", *FAST, "--autofocus", "scan", "--json")
    assert scan["focus_frames_per_refocus"] >= 8


# -- hardware path, on a simulated core ------------------------------------------------


def test_hardware_run_writes_the_focus_record_and_restores_the_engine(hardware, tmp_path,
                                                                      capsys):
    from napari_zfocus.acquisition.ome_focus_record import read_focus_record

    scope, cfg, seq_file = hardware
    before = scope.core.mda.engine
    out = tmp_path / "run.ome.tif"
    summary = run_json(capsys, "acquire", "--mm-config", str(cfg), "--sequence", str(seq_file),
                       "--output", str(out), "--focus-preset", "Channel/BF", "--json")
    assert summary["frames"] == 2 * 2 * 3 and summary["refocuses"] == 4
    assert scope.core.mda.engine is before
    assert scope.core.getCurrentConfig("Channel") == "FL"  # the imaging channel is back
    records = [r for f in summary["files"] for r in read_focus_record(f)]
    assert len(records) == 12
    assert all(math.isfinite(r["zfocus"]["focus_z_um"]) for r in records)


