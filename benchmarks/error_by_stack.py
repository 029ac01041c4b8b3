"""Where does a model go wrong? Errors per test stack, and what they follow.

For every stack of a dataset: the fraction of its slices within +/-1 um, and a straight
line fitted to predicted against true z. A slope above 1 means the model reads defocus
as larger than it is (the error grows with |z|), an intercept is a constant offset.
Then the correlation of the per-stack slope with every numeric column of
``annotations.csv`` (simulated sets record ``n_cells``, ``ceiling_fraction``,
``condenser_na``, ``photons``), which shows what the errors follow. Last, over all
images: the share within +/-1 um, the share whose sign of z is right at >= 2 um from focus,
and the share within +/-1 um near focus (|z| <= 1 um). A model used on another microscope
can be wrong by a gain (slopes far from 1) yet right in direction and at focus, which is
what a focus controller needs (README, "Beyond our own simulator").

Usage::

    python benchmarks/error_by_stack.py MODEL DATASET [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

#: The sign of z is scored on images at least this far from focus (um): nearer, a reading
#: of the wrong sign is still within the controller's dead-band.
SIGN_FROM_UM = 2.0


def per_stack_errors(model: Path, dataset_dir: Path) -> list[dict]:
    """One row per stack: annotation columns, within-1-um fraction, slope, intercept.

    Predictions come from :func:`napari_zfocus.inspection.evaluation.evaluate` (centre field
    of every slice, expected-value readout), the same as ``zfocus eval``.
    """
    from napari_zfocus.data import read_dataset
    from napari_zfocus.inspection.evaluation import evaluate
    from napari_zfocus.model.inference import Predictor

    predictor = Predictor.from_file(model, device="cpu")
    per_image = evaluate(predictor, read_dataset(dataset_dir)).per_image
    with open(dataset_dir / "annotations.csv", newline="") as fh:
        columns = {r["stack"]: r for r in csv.DictReader(fh)}
    rows = []
    for name, extra in columns.items():
        mine = per_image["stack"] == name
        z = per_image["z_true_um"][mine].astype(np.float64)
        pred = per_image["z_pred_um"][mine].astype(np.float64)
        if len(z) < 2:
            continue
        slope, intercept = np.polyfit(z, pred, 1)
        far, near = np.abs(z) >= SIGN_FROM_UM, np.abs(z) <= 1.0
        rows.append({
            **extra,
            "n_images": len(z),
            "n_far": int(far.sum()),
            "sign_right_far": float(np.mean(np.sign(pred[far]) == np.sign(z[far])))
            if far.any() else float("nan"),
            "n_near": int(near.sum()),
            "near_within_1um": float(np.mean(np.abs(pred[near] - z[near]) <= 1.0))
            if near.any() else float("nan"),
            "within_1um": float(np.mean(np.abs(pred - z) <= 1.0)),
            "mean_abs_error_um": float(np.mean(np.abs(pred - z))),
            "slope": float(slope),
            "intercept_um": float(intercept),
        })
    return rows


def pooled(rows: list[dict]) -> dict[str, float]:
    """Over all images of all stacks: within +/-1 um, sign right at >= ``SIGN_FROM_UM``, within
    +/-1 um near focus, and the median per-stack slope."""
    def weighted(key: str, count: str) -> float:
        n = sum(r[count] for r in rows)
        return sum(r[key] * r[count] for r in rows if r[count]) / n if n else float("nan")
    return {"within_1um": weighted("within_1um", "n_images"),
            "sign_right_far": weighted("sign_right_far", "n_far"),
            "near_within_1um": weighted("near_within_1um", "n_near"),
            "median_slope": float(np.median([r["slope"] for r in rows]))}


def correlations(rows: list[dict], target: str = "slope") -> dict[str, float]:
    """Pearson correlation of ``target`` with every numeric annotation column."""
    out = {}
    skip = {"stack", "focus_index", target, "n_images", "within_1um", "mean_abs_error_um",
            "intercept_um", "slope", "n_far", "sign_right_far", "n_near", "near_within_1um"}
    y = np.array([r[target] for r in rows])
    for key in rows[0]:
        if key in skip:
            continue
        try:
            x = np.array([float(r[key]) for r in rows])
        except (TypeError, ValueError):
            continue
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            out[key] = float(np.corrcoef(x, y)[0, 1])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("dataset", type=Path)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    rows = per_stack_errors(args.model, args.dataset)
    corr = correlations(rows)
    if args.json:
        print(json.dumps({"stacks": rows, "slope_correlation": corr, "pooled": pooled(rows)}))
        return 0
    cols = [k for k in ("n_cells", "ceiling_fraction", "condenser_na", "photons") if k in rows[0]]
    print("stack            within1  slope  intercept  " + "  ".join(cols))
    for r in sorted(rows, key=lambda r: r["within_1um"]):
        print(f"{r['stack']:16s} {r['within_1um']:7.2f} {r['slope']:6.3f} "
              f"{r['intercept_um']:+9.2f}  "
              + "  ".join(f"{r[c]:>{len(c)}}" for c in cols))
    print("correlation of the slope with: "
          + ", ".join(f"{k} {v:+.2f}" for k, v in sorted(corr.items())))
    total = pooled(rows)
    print(f"all images: {total['within_1um']:.1%} within +/-1 um; sign right at >= "
          f"{SIGN_FROM_UM:g} um from focus: {total['sign_right_far']:.1%}; within +/-1 um at "
          f"|z| <= 1 um: {total['near_within_1um']:.1%}; median slope {total['median_slope']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
