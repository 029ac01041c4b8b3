"""Does ``zfocus rescale`` restore a model moved to another microscope setting?

A model trained at one condenser aperture (or wavelength) reads distances with the wrong
gain at another. ``zfocus rescale`` measures that gain on a few UNANNOTATED stacks of the
new setting and divides the readings by it. This benchmark runs it as a user would, with
the command line: for every world (a folder of stacks to rescale from, and an annotated
test dataset of the same setting), ``zfocus eval`` before, ``zfocus rescale`` from each
disjoint group of ``--stacks`` stacks, and ``zfocus eval`` after. The rescale never sees
an annotation: only the stacks' files (their z-step and pixel size) are read.

Usage::

    python benchmarks/bench_rescale.py --model M.zfm \\
        --world NAME RESCALE_DIR TEST_DIR [--world ...] [--stacks 3] [--work W] [--json J]

``RESCALE_DIR`` is a dataset folder (its ``annotations.csv`` lists the stack files; the
focus columns are not used) or a folder of stack TIFFs. Prints one line per world and,
with ``--json``, writes per world: ``before`` and ``after`` (a list, one per group:
``gain`` applied, ``measured_gain``, ``applied``, ``within_1um``, ``median_abs_error_um``,
``flagged``, ``ece``).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

#: ``zfocus eval --json`` keys reported.
KEYS = ("within_1um", "median_abs_error_um", "flagged", "ece")


def _zfocus(*args: str) -> dict[str, Any]:
    """Run a zfocus command with ``--json``; its last stdout line as a dict."""
    done = subprocess.run([sys.executable, "-m", "napari_zfocus.cli", *args, "--json"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"zfocus {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stack_files(folder: Path) -> list[Path]:
    """The stacks of a dataset folder (``annotations.csv`` order) or its TIFFs, sorted."""
    table = folder / "annotations.csv"
    if table.is_file():
        with open(table, newline="") as fh:
            return [folder / row["stack"] for row in csv.DictReader(fh)]
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff"))


def _eval(model: Path, test: Path) -> dict[str, Any]:
    d = _zfocus("eval", str(model), str(test), "--no-progress")
    return {k: round(float(d[k]), 4) for k in KEYS if d.get(k) is not None}


def bench_world(model: Path, rescale_dir: Path, test: Path, stacks: int,
                work: Path) -> dict[str, Any]:
    """Before and after rescaling from each disjoint group of ``stacks`` stacks."""
    files = stack_files(rescale_dir)
    groups = [files[i:i + stacks] for i in range(0, len(files) - stacks + 1, stacks)]
    if not groups:
        raise SystemExit(f"{rescale_dir}: fewer than {stacks} stacks")
    result: dict[str, Any] = {"before": _eval(model, test), "after": []}
    for i, group in enumerate(groups):
        out = work / f"{test.name}_{i}.zfm"
        fit = _zfocus("rescale", str(model), *map(str, group), "--out", str(out),
                      "--overwrite")
        result["after"].append({"gain": fit["gain"], "measured_gain": fit["measured_gain"],
                                "applied": fit["applied"],
                                "stacks": [p.name for p in group], **_eval(out, test)})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--world", nargs=3, action="append", required=True,
                        metavar=("NAME", "RESCALE_DIR", "TEST_DIR"))
    parser.add_argument("--stacks", type=int, default=3, help="stacks per rescale (3)")
    parser.add_argument("--work", type=Path, default=Path("_scratch/bench_rescale"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"model": str(args.model), "stacks": args.stacks, "worlds": {}}
    for name, rescale_dir, test in args.world:
        r = bench_world(args.model, Path(rescale_dir), Path(test), args.stacks, args.work)
        report["worlds"][name] = r
        after = ", ".join(
            f"x{a['measured_gain']:.2f} " + ("applied" if a["applied"] else "not applied")
            + f": {a['within_1um'] * 100:.1f} %" for a in r["after"])
        print(f"{name}: before {r['before']['within_1um'] * 100:.1f} % "
              f"(median {r['before']['median_abs_error_um']:.2f} um); after {after}",
              flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
