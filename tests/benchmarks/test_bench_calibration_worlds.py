"""bench_calibration's other worlds: taken from worlds/sim_worlds.py, simulated as before."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The benchmarks are not installed: import them from their folder.
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import bench_calibration
from worlds import sim_worlds

#: The worlds, seeds and parameters bench_calibration simulated before it took them from
#: sim_worlds (its published numbers were measured with exactly these): a change to either
#: file that alters them must be deliberate, and show up here.
BEFORE: dict[str, tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "condenser_0.55-0.65": (7201, {"condenser_na": (0.55, 0.65)}, {}, {}),
    "condenser_0.12-0.2": (7202, {"condenser_na": (0.12, 0.2)}, {}, {}),
    "cell_dn_0.07-0.1": (7203, {}, {"cell_dn": (0.07, 0.1)}, {}),
    "absorbing_cells": (7204, {}, {"cell_absorption_per_um": (0.05, 0.1)}, {}),
    "dry_objective_na0.75": (7205, {}, {}, {"na": 0.75}),
    "red_light_0.7um": (7206, {}, {}, {"wavelength_um": 0.7}),
}


def test_other_worlds_simulate_the_same_stacks_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple] = []

    def record(folder: Path, n_stacks: int, seed: int, sim: Any = None, sample: Any = None,
               optics: Any = None, *, params: Any = None, label: Any = None) -> Path:
        calls.append((folder, n_stacks, seed, sim or {}, sample or {}, optics or {}, params))
        return folder

    monkeypatch.setattr(sim_worlds, "simulate_folder", record)
    got = bench_calibration.other_worlds(tmp_path, 3)
    assert got == {name: [tmp_path / name] for name in BEFORE}  # same worlds, same order
    want = [(tmp_path / name, 3, seed, sim, sample, optics, None)
            for name, (seed, sim, sample, optics) in BEFORE.items()]
    assert calls == want


def test_other_worlds_are_held_out_worlds_of_sim_worlds() -> None:
    assert set(bench_calibration.OTHER_WORLDS) <= set(sim_worlds.WORLDS) - {"own", "broad"}
