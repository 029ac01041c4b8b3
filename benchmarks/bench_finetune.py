"""Data efficiency: a lab's own model from a few annotated stacks, from scratch or from the base.

Issue #14's study. The domain is one the base model never saw: the independent waveorder
world (``benchmarks/worlds/waveorder_world.py``, another forward model, its own phantoms
and camera; the base model is trained on our simulator's broad preset only), either as drawn
(condenser aperture 0.25-0.55 per stack) or as one lab's microscope (``--condenser-na A``:
one Koehler setting for all stacks, as on a real stand). For every number of the domain's
annotated stacks (nested subsets of one training set), one run from scratch and one from the
base model, at the same budget (``--minutes``: equal wall-clock time, the issue's terms; or
``--steps``; the steps and CPU seconds of each run are recorded), all tested on the same
held-out stacks of the domain. Plus the base model zero-shot.

Each run is the real command, ``zfocus train SUBSET --out M --minutes M [--from MODEL]``,
so what is measured is what users get (``--from`` brings the few-stack schedule: a lower
learning rate with a short warm-up). Usage::

    python benchmarks/worlds/waveorder_world.py _scratch/wo_train80 --stacks 80 --seed 41000
    python benchmarks/worlds/waveorder_world.py _scratch/wo_test30 --stacks 30 --seed 42000
    python benchmarks/bench_finetune.py --base src/napari_zfocus/resources/base_model.zfm \\
        --train _scratch/wo_train80 --test _scratch/wo_test30 --sizes 2,5,10,20 --minutes 3

Prints a Markdown table and writes ``--json`` (default ``_scratch/finetune/summary.json``)
and, with ``--figure``, a PNG of within +/-1 um against the number of stacks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import evaluate_model


def subset(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` annotated stacks of ``src`` (hard links) as a dataset folder."""
    from napari_zfocus.data import read_dataset
    from napari_zfocus.data.annotations import write_annotations

    rows = list(read_dataset(src).annotations)[:n]
    if len(rows) < n:
        raise SystemExit(f"{src}: only {len(rows)} stacks, {n} asked")
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for a in rows:
        try:
            os.link(src / a.stack, dst / a.stack)
        except OSError:
            shutil.copy2(src / a.stack, dst / a.stack)
    write_annotations(dst, rows)
    return dst


def train(
    data: Path, out: Path, budget: list[str], start: Path | None, extra: list[str]
) -> dict[str, Any]:
    """Run ``zfocus train`` with ``budget`` (``--steps N`` or ``--minutes M``) and return its
    JSON summary plus wall and CPU seconds."""
    cmd = [sys.executable, "-m", "napari_zfocus.cli", "train", str(data), "--out", str(out),
           "--overwrite", *budget, "--json", "--no-progress", *extra]
    if start is not None:
        cmd += ["--from", str(start)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    summary["wall_s"] = round(wall, 1)
    summary["cpu_s"] = round(after.ru_utime + after.ru_stime
                             - before.ru_utime - before.ru_stime, 1)
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, required=True, help="the base model file")
    p.add_argument("--train", type=Path, required=True, help="the domain's training stacks")
    p.add_argument("--test", type=Path, required=True, help="the domain's test stacks")
    p.add_argument("--sizes", default="2,5,10,20,40,80")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=1500, help="step budget of every run")
    budget.add_argument("--minutes", type=float, default=None,
                        help="wall-clock budget of every run instead of steps (the issue's "
                             "'equal wall-clock budgets'; the steps each run made are recorded)")
    p.add_argument("--scratch-args", default="", help="extra flags of the from-scratch runs")
    p.add_argument("--base-args", default="",
                   help="extra flags of the runs from the base (e.g. to change its schedule)")
    p.add_argument("--arms", default="scratch,base",
                   help="which runs: scratch, base or both (results accumulate in --json)")
    p.add_argument("--work", type=Path, default=Path("_scratch/finetune"))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--figure", type=Path, default=None)
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    out_json = args.json or args.work / "summary.json"
    results: dict[str, Any] = json.loads(out_json.read_text()) if out_json.exists() else {}
    arms = set(args.arms.split(","))
    if "base" in arms and "zero_shot" not in results:
        results["zero_shot"] = evaluate_model(args.base, args.test)
        out_json.write_text(json.dumps(results, indent=1))
    budget_flags = (["--minutes", str(args.minutes)] if args.minutes is not None
                    else ["--steps", str(args.steps)])
    for n in (int(s) for s in args.sizes.split(",")):
        data = subset(args.train, args.work / f"data_{n}", n)
        for start, key in ((None, f"scratch_{n}"), (args.base, f"base_{n}")):
            if key in results or key.split("_")[0] not in arms:
                continue
            model = args.work / f"{key}.zfm"
            extra = (args.scratch_args if start is None else args.base_args).split()
            run = train(data, model, budget_flags, start, extra)
            results[key] = {"train": run, "test": evaluate_model(model, args.test),
                            "stacks": n, "steps": run["steps"], "minutes": args.minutes}
            out_json.write_text(json.dumps(results, indent=1))
            t = results[key]["test"]
            print(f"{key}: median {t['median_abs_error_um']:.2f} um, within 1 um "
                  f"{t['within_1um']:.1%}, {run['steps']} steps, {run['wall_s']:.0f} s, "
                  f"{run['cpu_s']:.0f} CPU-s", file=sys.stderr)
    print_table(results)
    if args.figure:
        plot(results, args.figure)
    return 0


def _cell(run: dict[str, Any] | None) -> str:
    if not run:
        return "-"
    t = run["test"]
    return f"{t['median_abs_error_um']:.2f} um, {t['within_1um']:.1%}"


def print_table(results: dict[str, Any]) -> None:
    z = results.get("zero_shot")
    if z:
        print(f"zero-shot base: median {z['median_abs_error_um']:.2f} um, "
              f"{z['within_1um']:.1%} within +/-1 um\n")
    print("| stacks | from scratch: median, within +/-1 um | from the base: median, "
          "within +/-1 um | steps, CPU s (scratch / base) |")
    print("|---|---|---|---|")
    sizes = sorted({v["stacks"] for k, v in results.items() if k != "zero_shot"})
    for n in sizes:
        s, b = results.get(f"scratch_{n}"), results.get(f"base_{n}")
        cpu = " / ".join(f"{r['train']['steps']}, {r['train']['cpu_s']:.0f}" if r else "-"
                         for r in (s, b))
        print(f"| {n} | {_cell(s)} | {_cell(b)} | {cpu} |")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({v["stacks"] for k, v in results.items() if k != "zero_shot"})
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    for prefix, label in (("scratch", "from scratch"), ("base", "from the base model")):
        xs = [n for n in sizes if f"{prefix}_{n}" in results]
        ys = [100 * results[f"{prefix}_{n}"]["test"]["within_1um"] for n in xs]
        ax.plot(xs, ys, "o-", label=label)
    if "zero_shot" in results:
        ax.axhline(100 * results["zero_shot"]["within_1um"], ls=":", c="grey",
                   label="base, zero-shot")
    ax.axhline(85, ls="--", c="k", lw=0.8, label="target 85 %")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()  # log-axis minor labels would overprint the stack counts
    ax.set_xlabel("annotated stacks of the new domain")
    ax.set_ylabel("test images within +/-1 um (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    raise SystemExit(main())
