"""Benchmark of the acquisition autofocus: one CNN frame vs a z-scan vs nothing.

Runs ``zfocus acquire --simulate`` (a real pymmcore-plus MDA on the simulated plate) three
times on the SAME plate (same seed: same positions, scenes and drift): with
``--autofocus zfocus``, ``scan`` (the OughtaFocus-like baseline) and ``none``; prints a
table and one JSON line with the three summaries and the ratio of focus frames.
Run it on a quiet machine (the time added per refocus is wall time)::

    python benchmarks/bench_acquire.py                       # the issue's 24 h, 4 positions
    python benchmarks/bench_acquire.py --hours 2 --methods zfocus   # a quick timing run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from napari_zfocus._json import to_json_line

ROWS = (
    ("frames", "acquired frames", "{:d}"),
    ("within_1um", "within +/-1 um (true)", "{:.2%}"),
    ("mean_abs_error_um", "mean |error| (um)", "{:.2f}"),
    ("max_abs_error_um", "max |error| (um)", "{:.2f}"),
    ("focus_frames", "focus frames", "{:d}"),
    ("focus_frames_per_refocus", "focus frames per refocus", "{:.2f}"),
    ("max_step_um", "largest step (um)", "{:.2f}"),
    ("skipped", "skipped frames", "{:d}"),
    ("refocus_added_ms_median", "added per refocus, median (ms)", "{:.1f}"),
    ("refocus_added_ms_p95", "added per refocus, p95 (ms)", "{:.1f}"),
    ("wall_s", "wall time (s)", "{:.0f}"),
)


def run(method: str, args: argparse.Namespace) -> dict:
    """One ``zfocus acquire --simulate`` run; its JSON summary."""
    argv = ["zfocus", "acquire", "--simulate", "--positions", str(args.positions),
            "--hours", str(args.hours), "--interval-min", str(args.interval_min),
            "--drift-um", str(args.drift_um), "--seed", str(args.seed),
            "--autofocus", method, "--json"]
    if args.model and method == "zfocus":
        argv += ["--model", args.model]
    print("$ " + " ".join(argv), file=sys.stderr, flush=True)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{method}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cell(value: object, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--positions", type=int, default=4)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--interval-min", type=float, default=10.0)
    p.add_argument("--drift-um", type=float, default=40.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=None, help="model file (default: the demo model)")
    p.add_argument("--methods", nargs="+", default=["zfocus", "scan", "none"])
    args = p.parse_args()
    results = {m: run(m, args) for m in args.methods}
    print("| | " + " | ".join(results) + " |")
    print("|---" * (len(results) + 1) + "|")
    for key, label, fmt in ROWS:
        print(f"| {label} | " + " | ".join(cell(r.get(key), fmt) for r in results.values()) + " |")
    out: dict = {"runs": results}
    if "zfocus" in results and "scan" in results:
        ours, scan = results["zfocus"]["focus_frames"], results["scan"]["focus_frames"]
        out["scan_to_zfocus_focus_frames"] = scan / ours if ours else None
        print(f"scan takes {out['scan_to_zfocus_focus_frames']:.1f}x the focus frames of zfocus")
    print(to_json_line(out))


if __name__ == "__main__":
    main()
