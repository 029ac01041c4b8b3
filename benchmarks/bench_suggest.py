"""Accuracy of the in-focus suggestion on simulated stacks with known focus.

Compares the contrast-dip suggestion (``suggest_focus``) with the naive "sharpest slice"
(argmax of each classic focus score) on stacks from the simulator's default settings.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_suggest.py --n 30 --seed 1000 [--json out.json]
    nice -n 10 .venv/bin/python benchmarks/bench_suggest.py --n 30 --seed 2000 --hard

Measured (2 shared CPU cores, simulator of this commit, 320 x 320 px, 31 slices, 1 um):

=================  ==========  =====  ========  =====================================
preset, seeds      mean|err|   exact  within 1  sharpest slice (argmax of a score)
=================  ==========  =====  ========  =====================================
default 1000-1029  0.00 slice  1.00   1.00      4.4-8.4 slices mean|err|, biased +3..+7
hard 2000-2029     0.50 slice  0.53   0.97      7.0-7.6 slices; max suggest error 2
=================  ==========  =====  ========  =====================================

The hard preset's errors lean one slice low (signed mean -0.50). Seeds 2000-2015 were
also used to choose the peak-line depth ranking (it replaced a lower-rim ranking that
scored 0.90 / 0.33 / 0.87 on hard 2000-2029), so that row is not fully held out.
(That table is the contrast dip alone, before the sign flip became the default.)

Across worlds (``--datasets``): every folder of ``benchmarks/worlds/sim_worlds.py``
(20 stacks each, seeds 31000 + 1000 k) and 30 stacks of the independent waveorder world
(``benchmarks/worlds/waveorder_world.py``, seed 42000), none of them used while the sign
flip was designed (that used other seeds of the first nine worlds)::

    python benchmarks/worlds/sim_worlds.py _scratch/worlds --stacks 20 --seed 31000
    python benchmarks/worlds/waveorder_world.py _scratch/wo_test30 --stacks 30 --seed 42000
    python benchmarks/bench_suggest.py --datasets _scratch/worlds/* _scratch/wo_test30

=======================  ======================  ======================
world                    default (sign flip)     contrast dip
                         within 1 / exact / max  within 1 / exact / max
=======================  ======================  ======================
own                      1.00 / 0.95 / 1         1.00 / 1.00 / 0
condenser_0.55-0.65      1.00 / 0.85 / 1         1.00 / 0.90 / 1
condenser_0.12-0.2       1.00 / 1.00 / 0         1.00 / 0.90 / 1
cell_dn_0.07-0.1         1.00 / 1.00 / 0         1.00 / 1.00 / 0
absorbing_cells          0.95 / 0.20 / 2         0.35 / 0.15 / 9
dry_objective_na0.75     1.00 / 1.00 / 0         1.00 / 1.00 / 0
red_light_0.7um          1.00 / 1.00 / 0         1.00 / 1.00 / 0
dim_sparse_ceiling       0.95 / 0.65 / 2         0.95 / 0.60 / 2
sparse_pillars           1.00 / 0.65 / 1         0.95 / 0.25 / 3
ceiling_heavy            1.00 / 0.25 / 1         1.00 / 0.35 / 1
waveorder (independent)  1.00 / 0.90 / 1         1.00 / 0.93 / 1
=======================  ======================  ======================

The sign flip's confidence on absorbing cells is low (0.19 on average): it says "check".
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_zfocus.annotation import FOCUS_SCORES, suggest_focus
from napari_zfocus.data import ZStack
from napari_zfocus.simulation.simulated_stack import SimulationParams, simulate_stack


def summarise(errors: list[int], z_step_um: float) -> dict[str, float]:
    """Mean |error| (slices, um) and the fractions exact / within 1 slice."""
    e = np.abs(np.asarray(errors))
    return {
        "mean_abs_error_slices": float(e.mean()),
        "mean_abs_error_um": float(e.mean() * z_step_um),
        "max_abs_error_slices": int(e.max()),
        "fraction_exact": float((e == 0).mean()),
        "fraction_within_1": float((e <= 1).mean()),
        "mean_signed_error_slices": float(np.mean(errors)),
    }


def _fmt(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else "-"


def bench_folders(folders: list[Path]) -> dict[str, object]:
    """Per dataset folder: the default suggestion (sign flip first) and the contrast dip."""
    from napari_zfocus.data import read_dataset

    report: dict[str, object] = {}
    print(f"{'world':24s} {'method':13s} within1  exact  max  signed  conf(ok/miss)")
    for folder in folders:
        dataset = read_dataset(folder)
        errors: dict[str, list[int]] = {"auto": [], "contrast-dip": []}
        confidence: list[float] = []
        for annotation in dataset.annotations:
            opened = dataset.open_stack(annotation)
            stack = ZStack(opened.to_numpy(), opened.z_step_um, opened.pixel_size_um)
            for method in errors:
                found = suggest_focus(stack, classic_scores=False, method=method)
                errors[method].append(found.focus_index - annotation.focus_index)
                if method == "auto":
                    confidence.append(found.confidence)
        world: dict[str, object] = {}
        for method, e in errors.items():
            s = summarise(e, dataset.annotations[0].z_step_um)
            miss = np.abs(e) > 1
            c = np.asarray(confidence)
            if method == "auto":
                s["mean_confidence_within_1"] = float(c[~miss].mean()) if (~miss).any() else None
                s["mean_confidence_missed"] = float(c[miss].mean()) if miss.any() else None
            world[method] = s
            print(f"{folder.name:24s} {method:13s} {s['fraction_within_1']:7.2f}  "
                  f"{s['fraction_exact']:5.2f}  {s['max_abs_error_slices']:3d}  "
                  f"{s['mean_signed_error_slices']:+6.2f}  "
                  + (f"{_fmt(s['mean_confidence_within_1'])} / "
                     f"{_fmt(s['mean_confidence_missed'])}" if method == "auto" else ""),
                  flush=True)
        report[folder.name] = world
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="number of simulated stacks")
    parser.add_argument("--seed", type=int, default=1000, help="first seed")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--hard",
        action="store_true",
        help="dim, sparse fields with many ceiling cells (photons 300-1000, 5-30 cells, "
        "ceiling fraction 0.3-0.6)",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        type=Path,
        default=None,
        help="instead of simulating: annotated dataset folders (one world each, e.g. from "
        "benchmarks/worlds/); compares the default suggestion with the contrast dip",
    )
    args = parser.parse_args()
    if args.datasets:
        report = bench_folders(args.datasets)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
        return 0

    params = SimulationParams()
    if args.hard:
        params = SimulationParams(
            photons=(300.0, 1000.0), n_cells=(5.0, 30.0), ceiling_fraction=(0.3, 0.6)
        )
    errors: dict[str, list[int]] = {"suggest": [], **{f"argmax_{k}": [] for k in FOCUS_SCORES}}
    confidences = []
    t_sim = t_suggest = 0.0
    for seed in range(args.seed, args.seed + args.n):
        t0 = time.perf_counter()
        sim = simulate_stack(params, seed=seed)
        t1 = time.perf_counter()
        result = suggest_focus(ZStack(sim.data, params.z_step_um, params.pixel_size_um))
        t_suggest += time.perf_counter() - t1
        t_sim += t1 - t0
        errors["suggest"].append(result.focus_index - sim.focus_index)
        confidences.append(result.confidence)
        for key in FOCUS_SCORES:
            errors[f"argmax_{key}"].append(int(np.argmax(result.profiles[key])) - sim.focus_index)
        print(
            f"seed {seed}: true {sim.focus_index:2d} suggested {result.focus_index:2d} "
            f"({result.method}, confidence {result.confidence:.2f}) "
            f"sharpest {result.sharpest_index:2d}",
            flush=True,
        )
    report = {
        "n_stacks": args.n,
        "preset": "hard" if args.hard else "default",
        "first_seed": args.seed,
        "shape": list(params.shape),
        "n_slices": params.n_slices,
        "z_step_um": params.z_step_um,
        "seconds_per_suggestion": t_suggest / args.n,
        "seconds_per_simulation": t_sim / args.n,
        "mean_confidence": float(np.mean(confidences)),
        "methods": {k: summarise(v, params.z_step_um) for k, v in errors.items()},
        "errors_suggest": errors["suggest"],
    }
    print()
    print(f"{'method':32s} mean|err| slices  exact  within1  signed")
    for key, s in report["methods"].items():
        print(
            f"{key:32s} {s['mean_abs_error_slices']:16.2f}  {s['fraction_exact']:5.2f}  "
            f"{s['fraction_within_1']:7.2f}  {s['mean_signed_error_slices']:+6.2f}"
        )
    print(f"{report['seconds_per_suggestion']:.2f} s per suggestion (incl. classic scores)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
