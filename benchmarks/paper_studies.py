"""Reproduce the three studies of Wei & Roberts (2018) on simulated data.

The paper varied one setting at a time around its best model (4x downsampling, 1 um
bins, all training stacks) and compared the test-error distributions and MSE:

1. ``downsampling``: 2x / 4x / 10x of 0.06 um camera pixels, i.e. the network sees
   0.12 / 0.24 / 0.60 um per pixel over the same field;
2. ``bins``: z-bins of 1, 2, 3, 4, 5 um over -20..+20 um (41, 21, 14, 11, 9 classes);
3. ``dataset_size``: 25, 50, 100, 200, 300 training stacks (nested subsets).

Here every run trains with the project's own loop (:func:`napari_zfocus.training.loop.
train`) and is evaluated with :func:`napari_zfocus.inspection.evaluation.evaluate` on one fixed
simulated test set (centre field of every slice, as in the paper). The reference setting
(4x, 1 um, all stacks) is shared by the three studies and trained once.

Reduced, CPU-sized setting (the paper trained 100,000 steps of batch 50 per model on a
GPU; this runs on 2 shared CPU cores): stacks are simulated ONCE at 0.12 um/px (so "2x"
is native and 4x / 10x are area-averaged from it, as the paper downsampled its camera
frames) on 256 x 256 px (30.7 um, cell counts scaled to that field: 5..80 cells), and the
networks see a random 18 um crop (the paper: 60 um), i.e. 150 / 75 / 30 px inputs.
Budget: ``--steps-per-run`` gives every run the same number of steps, as in the paper;
``--minutes-per-run`` the same wall-clock time (data loading included), so cheaper inputs
get more steps, the trade-off a CPU user faces. ``--seeds`` trains every setting once per
seed (weights, batch order); tables and figures show the mean and the single seeds, so a
difference can be compared with the seed-to-seed spread. Every run's JSON records the
steps it made, which budget ended it, and the machine load.

Outputs under ``--out`` (default ``_scratch/studies``): ``data/`` (simulated sets,
reused), ``models/``, ``results/<setting>_seed<k>.json`` (metrics + every test image's true and
predicted z; a finished run is reused unless ``--force``), ``summary.json``, and the
figures ``study_<name>.png`` in ``--figures``. A Markdown table is printed at the end.

Usage::

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \\
        python benchmarks/paper_studies.py --minutes-per-run 0 --steps-per-run 1000 \\
        --seeds 0,1,2 --figures docs/images
    python benchmarks/paper_studies.py --quick --out /tmp/studies_quick   # ~1 min
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("downsampling", "bins", "dataset_size")
#: Camera pixel of the paper (Fluar 40x on its camera); downsampling factors refer to it.
PAPER_PIXEL_UM = 0.06


# --------------------------------------------------------------------------- settings
@dataclass
class StudySettings:
    """Everything that defines a study run (data, networks, budgets, outputs)."""

    out: Path = ROOT / "_scratch" / "studies"
    figures: Path | None = None
    # Simulated data (one training and one test set for every run).
    sim_pixel_um: float = 0.12
    stack_px: int = 256
    n_slices: int = 31
    n_cells: tuple[float, float] = (5.0, 80.0)
    n_train: int = 300
    n_test: int = 30
    train_seed: int = 101
    test_seed: int = 202
    # The network's view and the studied settings.
    field_um: float = 18.0
    factors: tuple[int, ...] = (2, 4, 10)
    bins_um: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0)
    dataset_sizes: tuple[int, ...] = (25, 50, 100, 200, 300)
    reference_factor: int = 4
    reference_bin_um: float = 1.0
    # Training budget per run (whichever ends first) and optimiser settings.
    steps: int | None = None
    minutes: float | None = 2.0
    batch: int = 16
    #: Every setting is trained once per seed (weights, batches); the reports give the
    #: mean and the spread over seeds.
    seeds: tuple[int, ...] = (0,)
    threads: int | None = None
    force: bool = False
    log: bool = True

    @classmethod
    def quick(cls, out: Path) -> StudySettings:
        """A tiny setting that runs every study in about a minute (a smoke test)."""
        return cls(out=out, stack_px=128, n_slices=9, n_cells=(10.0, 20.0), n_train=4,
                   n_test=2, field_um=15.0, bins_um=(1.0, 5.0), dataset_sizes=(2, 4),
                   steps=3, minutes=1.0, batch=4)

    def data_key(self) -> dict[str, Any]:
        """The settings that define the simulated sets (a reused set must match them)."""
        return {"sim_pixel_um": self.sim_pixel_um, "stack_px": self.stack_px,
                "n_slices": self.n_slices, "n_cells": list(self.n_cells)}

    def run_key(self, seed: int) -> dict[str, Any]:
        """The settings that define a run's result (a reused result must match them)."""
        return {**self.data_key(), "n_test": self.n_test, "train_seed": self.train_seed,
                "test_seed": self.test_seed, "field_um": self.field_um, "steps": self.steps,
                "minutes": self.minutes, "batch": self.batch, "seed": seed}


@dataclass(frozen=True)
class RunSpec:
    """One trained and evaluated model: a downsampling factor, a bin size, a set size."""

    factor: int
    bin_um: float
    n_train: int

    @property
    def pixel_size_um(self) -> float:
        """What the network sees: the paper's 0.06 um pixel times the factor."""
        return round(PAPER_PIXEL_UM * self.factor, 6)

    @property
    def name(self) -> str:
        return f"ds{self.factor}x_bin{self.bin_um:g}um_n{self.n_train}"

    def run_name(self, seed: int) -> str:
        """Name of this setting's run with training seed ``seed``."""
        return f"{self.name}_seed{seed}"


def plan(settings: StudySettings, studies: Sequence[str]) -> dict[RunSpec, list[str]]:
    """The runs the studies need, each once, with the studies that use it (in order)."""
    unknown = sorted(set(studies) - set(STUDIES))
    if unknown:
        from napari_zfocus.errors import ZFocusError

        raise ZFocusError(f"unknown studies {unknown}; choose from {', '.join(STUDIES)}")
    ref_f, ref_b, n_all = settings.reference_factor, settings.reference_bin_um, settings.n_train
    runs: dict[RunSpec, list[str]] = {}

    def add(spec: RunSpec, study: str) -> None:
        runs.setdefault(spec, []).append(study)

    for study in studies:
        if study == "downsampling":
            for f in settings.factors:
                add(RunSpec(f, ref_b, n_all), study)
        elif study == "bins":
            for b in settings.bins_um:
                add(RunSpec(ref_f, float(b), n_all), study)
        else:
            for n in settings.dataset_sizes:
                if n > n_all:
                    from napari_zfocus.errors import ZFocusError

                    raise ZFocusError(f"dataset size {n} exceeds the {n_all} simulated stacks")
                add(RunSpec(ref_f, ref_b, int(n)), study)
    return runs


def _study_order(study: str) -> Any:
    """Sort key of a study's runs along its axis (factor, bin size or set size)."""
    attr = {"downsampling": "factor", "bins": "bin_um", "dataset_size": "n_train"}[study]
    return lambda spec: getattr(spec, attr)


def _log(settings: StudySettings, msg: str) -> None:
    if settings.log:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data
def ensure_dataset(folder: Path, n_stacks: int, seed: int, settings: StudySettings) -> Any:
    """The first ``n_stacks`` stacks of the simulated set in ``folder``, simulating if needed.

    Stack ``i`` depends only on ``(seed, i)`` (see
    :func:`napari_zfocus.simulation.stack_seed`), so a folder holding at least
    ``n_stacks`` stacks made with the same settings is reused, also one whose simulation
    was interrupted. A fingerprint ``study_data.json`` records those settings, so a set
    made with other settings is never silently reused.

    Returns
    -------
    Dataset
        :class:`napari_zfocus.data.Dataset` restricted to the first ``n_stacks`` stacks.
    """
    from napari_zfocus.data import read_dataset
    from napari_zfocus.simulation import SimulationParams, simulate_dataset

    key = {**settings.data_key(), "seed": seed}
    stamp = folder / "study_data.json"
    if (stamp.is_file() and json.loads(stamp.read_text()) == key
            and (folder / "annotations.csv").is_file()):
        ds = read_dataset(folder)
        if len(ds.annotations) >= n_stacks:
            return dataclasses.replace(ds, annotations=list(ds.annotations[:n_stacks]))
    params = SimulationParams(pixel_size_um=settings.sim_pixel_um,
                              shape=(settings.stack_px, settings.stack_px),
                              n_slices=settings.n_slices, n_cells=tuple(settings.n_cells))
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            _log(settings, f"simulated {done}/{total} stacks into {folder} "
                           f"({time.perf_counter() - t0:.0f} s)")

    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(key))  # first: an interrupted set is valid as far as it got
    simulate_dataset(folder, n_stacks, seed=seed, params=params, overwrite=True,
                     progress=progress)
    return read_dataset(folder)


# --------------------------------------------------------------------------- one run
def run_one(spec: RunSpec, seed: int, train_set: Any, test_set: Any, settings: StudySettings,
            studies: list[str]) -> dict[str, Any]:
    """Train and evaluate one setting with one seed; written to ``results/<run name>.json``.

    A record from an earlier run with the same :meth:`StudySettings.run_key` is reused
    (unless ``settings.force``), so an interrupted study continues where it stopped.
    """
    from napari_zfocus._atomic import atomic_write_text
    from napari_zfocus.inspection.evaluation import evaluate
    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.model.inference import Predictor
    from napari_zfocus.model.network import build_network, count_parameters
    from napari_zfocus.training.loop import TrainConfig, train

    name = spec.run_name(seed)
    path = settings.out / "results" / f"{name}.json"
    if path.is_file() and not settings.force:
        old = json.loads(path.read_text())
        if old.get("run_key") == settings.run_key(seed):
            old["studies"] = studies
            _log(settings, f"{name}: reusing {path}")
            return old

    mc = ModelConfig(pixel_size_um=spec.pixel_size_um, field_um=settings.field_um,
                     bin_um=spec.bin_um)
    model_path = settings.out / "models" / f"{name}.zfm"
    # No validation split: the fixed test set measures the model, and the smallest
    # training sets should not lose stacks to validation. No periodic checkpoints.
    tc = TrainConfig(out=model_path, steps=settings.steps, minutes=settings.minutes,
                     batch=settings.batch, seed=seed, val_fraction=0.0,
                     checkpoint_every=0, checkpoint_every_s=0.0, threads=settings.threads)
    subset = dataclasses.replace(train_set, annotations=list(train_set.annotations[: spec.n_train]))
    load_before = os.getloadavg()[0]
    _log(settings, f"{name}: training ({mc.input_px} px input, {mc.n_bins} bins, "
                   f"{spec.n_train} stacks; load {load_before:.1f})")
    t0 = time.perf_counter()
    last = None
    first_step_s = None
    for ev in train(subset, mc, tc):
        last = ev
        if ev.kind == "step" and first_step_s is None:
            first_step_s = ev.elapsed_s  # ~ data loading time (counted in the minutes)
        if ev.kind == "step" and ev.step % 100 == 0:
            _log(settings, f"{name}: step {ev.step} loss {ev.loss:.3f} "
                           f"({ev.images_per_s or 0:.0f} img/s)")
    train_s = time.perf_counter() - t0
    assert last is not None and last.kind in ("done", "cancelled")

    t1 = time.perf_counter()
    predictor = Predictor.from_file(model_path, device="cpu", num_threads=settings.threads)
    result = evaluate(predictor, test_set)
    eval_s = time.perf_counter() - t1
    pi = result.per_image
    by_steps = settings.steps is not None and last.step >= settings.steps
    stopped_by = "steps" if by_steps else "minutes"
    record = {
        "name": name,
        "setting": spec.name,
        "seed": seed,
        "studies": studies,
        "factor": spec.factor,
        "pixel_size_um": spec.pixel_size_um,
        "field_um": settings.field_um,
        "input_px": mc.input_px,
        "bin_um": spec.bin_um,
        "n_bins": mc.n_bins,
        "n_train_stacks": spec.n_train,
        "n_parameters": count_parameters(build_network(mc)),
        "steps": last.step,
        "batch": settings.batch,
        "stopped_by": stopped_by,
        "train_s": round(train_s, 1),
        "data_loading_s": round(first_step_s or 0.0, 1),
        "eval_s": round(eval_s, 1),
        "final_loss": last.loss,
        "images_per_s": last.images_per_s,
        "load_avg_before": round(load_before, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
        "metrics": result.to_json_dict(),
        "z_true_um": np.round(pi["z_true_um"].astype(float), 3).tolist(),
        "z_pred_um": np.round(pi["z_pred_um"].astype(float), 3).tolist(),
        "z_argmax_um": np.round(pi["z_argmax_um"].astype(float), 3).tolist(),
        "run_key": settings.run_key(seed),
    }
    m, a = record["metrics"], record["metrics"]["argmax"]
    _log(settings, f"{name}: {last.step} steps in {train_s:.0f} s; median |err| "
                   f"{m['median_abs_error_um']:.2f} um, within 1 um {m['within_1um']:.2f}, "
                   f"MSE {m['mse_um2']:.2f} (argmax MSE {a['mse_um2']:.2f})")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record))
    return record


# --------------------------------------------------------------------------- all runs
def run_studies(settings: StudySettings, studies: Sequence[str] = STUDIES) -> dict[str, Any]:
    """Simulate (or reuse) the data, run every needed setting, plot, write ``summary.json``.

    Returns
    -------
    dict
        ``{"settings": ..., "runs": {name: record}, "studies": {study: [names]},
        "figures": [paths], "wall_s": ...}``.
    """
    from napari_zfocus._atomic import atomic_write_text

    t0 = time.perf_counter()
    runs = plan(settings, studies)
    settings.out.mkdir(parents=True, exist_ok=True)
    data = settings.out / "data"
    tag = f"px{settings.sim_pixel_um:g}_{settings.stack_px}px_{settings.n_slices}z"
    train_set = ensure_dataset(data / f"train_{tag}_seed{settings.train_seed}",
                               settings.n_train, settings.train_seed, settings)
    test_set = ensure_dataset(data / f"test_{tag}_seed{settings.test_seed}",
                              settings.n_test, settings.test_seed, settings)
    sim_s = time.perf_counter() - t0

    # Seed by seed: an interrupted study still has every setting at the first seeds.
    records: dict[str, list[dict[str, Any]]] = {spec.name: [] for spec in runs}
    for seed in settings.seeds:
        for spec, used in runs.items():
            records[spec.name].append(run_one(spec, seed, train_set, test_set, settings, used))
    by_study = {s: [spec.name for spec in sorted(runs, key=_study_order(s)) if s in runs[spec]]
                for s in studies}
    fig_dir = settings.figures or settings.out / "figures"
    figures = [plot_study(s, [records[n] for n in names], fig_dir / f"study_{s}.png")
               for s, names in by_study.items()]
    summary = {
        "settings": {k: (str(v) if isinstance(v, Path) else v)
                     for k, v in dataclasses.asdict(settings).items()},
        "studies": by_study,
        "by_setting": {n: aggregate(rs) for n, rs in records.items()},
        "runs": {r["name"]: {k: v for k, v in r.items() if not k.startswith("z_")}
                 for rs in records.values() for r in rs},
        "figures": [str(f) for f in figures],
        "data_s": round(sim_s, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    atomic_write_text(settings.out / "summary.json", json.dumps(summary, indent=1))
    summary["runs"] = {r["name"]: r for rs in records.values() for r in rs}
    return summary


#: The metrics reported per setting: (key in the summary, readout, key in the metrics).
REPORTED = tuple(
    (f"{readout}_{key}", readout, key)
    for readout in ("ev", "argmax")
    for key in ("median_abs_error_um", "within_1um", "mse_um2")
)


def metric(record: dict[str, Any], readout: str, key: str) -> float:
    """One test metric of a run: ``readout`` is ``"ev"`` (expected value) or ``"argmax"``."""
    metrics = record["metrics"] if readout == "ev" else record["metrics"]["argmax"]
    return float(metrics[key])


def _over_seeds(values: Sequence[float]) -> dict[str, Any]:
    """Per-seed values, their mean and sample SD (None for a single seed)."""
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "sd": sd, "values": list(values)}


def aggregate(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One setting over its seeds: per-seed values, mean and sample SD of each metric."""
    first = records[0]
    out: dict[str, Any] = {k: first[k] for k in (
        "setting", "factor", "pixel_size_um", "field_um", "input_px", "bin_um", "n_bins",
        "n_train_stacks", "n_parameters", "batch")}
    out["seeds"] = [r["seed"] for r in records]
    out["steps"] = [r["steps"] for r in records]
    out["train_s"] = [r["train_s"] for r in records]
    out["load_avg_before"] = [r["load_avg_before"] for r in records]
    for name, readout, key in REPORTED:
        out[name] = _over_seeds([metric(r, readout, key) for r in records])
    # Gross failures (expected-value error > 5 um): the few images that decide the MSE.
    out["share_over_5um"] = _over_seeds([
        float(np.mean(np.abs(np.asarray(r["z_pred_um"]) - np.asarray(r["z_true_um"])) > 5.0))
        for r in records])
    return out


# --------------------------------------------------------------------------- reporting
def setting_label(study: str, record: dict[str, Any]) -> str:
    """How a run is named on a study's axis."""
    if study == "downsampling":
        return f"{record['factor']}x ({record['pixel_size_um']:g} um/px)"
    if study == "bins":
        return f"{record['bin_um']:g} um ({record['n_bins']} bins)"
    return f"{record['n_train_stacks']} stacks"


def plot_study(study: str, groups: Sequence[Sequence[dict[str, Any]]], path: Path) -> Path:
    """The study's figure, after the paper's Fig. 2-4; one group of seeds per setting.

    Left: distribution of signed errors (argmax readout, the paper's) per setting, pooled
    over seeds; middle: MSE per setting for both readouts; right: fraction within +/-1 um.
    Bars are means over seeds, dots the single seeds.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from napari_zfocus._atomic import atomic_path

    fig = Figure(figsize=(14.0, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.2, top=0.88, wspace=0.3)
    ax_h, ax_m, ax_w = fig.subplots(1, 3)
    labels = [setting_label(study, g[0]) for g in groups]
    edges = np.arange(-12.5, 12.51, 1.0)
    for i, (group, label) in enumerate(zip(groups, labels, strict=True)):
        err = np.concatenate([np.asarray(r["z_argmax_um"]) - np.asarray(r["z_true_um"])
                              for r in group])
        ax_h.hist(np.clip(err, edges[0], edges[-1]), bins=edges, histtype="step",
                  density=True, color=f"C{i}", label=label, linewidth=1.5)
    ax_h.set_xlabel("error, predicted - true z (um; argmax readout; clipped at +/-12)")
    ax_h.set_ylabel("fraction of test images per um")
    ax_h.legend(fontsize=8)
    ax_h.set_title("error distribution")

    x = np.arange(len(groups))
    for ax, key, title in ((ax_m, "mse_um2", "mean squared error (um^2)"),
                           (ax_w, "within_1um", "fraction within +/-1 um")):
        for dx, readout, colour, name in ((-0.2, "argmax", "0.55", "argmax (paper)"),
                                          (0.2, "ev", "C0", "expected value")):
            values = [[metric(r, readout, key) for r in g] for g in groups]
            ax.bar(x + dx, [np.mean(v) for v in values], 0.4, label=name, color=colour)
            for xi, v in zip(x, values, strict=True):
                ax.plot(np.full(len(v), xi + dx), v, "k.", markersize=4)
        ax.set_title(title)
        ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
        ax.legend(fontsize=8)
    ax_w.set_ylim(0, 1)
    titles = {"downsampling": "Downsampling (fixed field)", "bins": "Bin size",
              "dataset_size": "Training-set size"}
    r0 = groups[0][0]
    steps = sorted({r["steps"] for g in groups for r in g})
    steps_text = f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
    n_seeds = sorted({len(g) for g in groups})
    fig.suptitle(f"{titles[study]}: simulated data, {r0['field_um']:g} um field, "
                 f"{steps_text} steps x batch {r0['batch']} per run, "
                 f"{'/'.join(map(str, n_seeds))} seed(s) per setting (dots), "
                 f"{r0['metrics']['n_images']} test images")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _mean_sd(stat: dict[str, Any], digits: int = 2) -> str:
    if stat["sd"] is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def markdown_table(summary: dict[str, Any]) -> str:
    """One row per (study, setting): steps and the test metrics of both readouts.

    With several seeds a cell reads ``mean ± SD`` over the seeds.
    """
    lines = [
        ("| study | setting | input px | train stacks | seeds | steps | train min (median) | "
         "median abs err (um) | within 1 um | MSE (um^2) | argmax: median | argmax: within 1 um "
         "| argmax: MSE | share > 5 um off |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    columns = [name for name, _, _ in REPORTED] + ["share_over_5um"]
    for study, names in summary["studies"].items():
        for n in names:
            g = summary["by_setting"][n]
            steps = sorted(set(g["steps"]))
            steps_text = f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
            cells = " | ".join(_mean_sd(g[c]) for c in columns)
            lines.append(
                f"| {study} | {setting_label(study, g)} | {g['input_px']} | "
                f"{g['n_train_stacks']} | {len(g['seeds'])} | {steps_text} | "
                f"{np.median(g['train_s']) / 60:.1f} | {cells} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> tuple[StudySettings, list[str]]:
    """Command-line flags -> settings and the list of studies."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "_scratch" / "studies",
                   help="work folder: data, models, results (default _scratch/studies)")
    p.add_argument("--figures", type=Path, default=None,
                   help="folder for study_*.png (default OUT/figures)")
    p.add_argument("--studies", default=",".join(STUDIES),
                   help=f"comma-separated subset of {','.join(STUDIES)}")
    p.add_argument("--minutes-per-run", type=float, default=None,
                   help="wall-clock budget per training run, data loading included "
                        "(default 2; 0 = none)")
    p.add_argument("--steps-per-run", type=int, default=None,
                   help="step budget per training run (default none; 0 = none)")
    p.add_argument("--batch", type=int, default=None, help="mini-batch size (default 16)")
    p.add_argument("--seeds", default=None,
                   help="comma-separated training seeds; every setting is trained once per seed "
                        "(default 0)")
    p.add_argument("--field-um", type=float, default=None,
                   help="side of the field the networks see, um (default 18)")
    p.add_argument("--n-train", type=int, default=None, help="simulated training stacks (300)")
    p.add_argument("--n-test", type=int, default=None, help="simulated test stacks (30)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default all cores)")
    p.add_argument("--quick", action="store_true",
                   help="tiny setting: a smoke test of about a minute")
    p.add_argument("--force", action="store_true", help="retrain runs that have results")
    args = p.parse_args(argv)

    s = StudySettings.quick(args.out) if args.quick else StudySettings(out=args.out)
    s.figures = args.figures
    s.force, s.threads = args.force, args.threads
    if args.minutes_per_run is not None:
        s.minutes = args.minutes_per_run or None
    if args.steps_per_run is not None:
        s.steps = args.steps_per_run or None
    if args.batch is not None:
        s.batch = args.batch
    if args.seeds is not None:
        try:
            s.seeds = tuple(int(x) for x in args.seeds.split(",") if x.strip())
        except ValueError:
            p.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
        if not s.seeds:
            p.error("--seeds: give at least one seed")
    if args.field_um is not None:
        s.field_um = args.field_um
    if args.n_test is not None:
        s.n_test = args.n_test
    if args.n_train is not None:
        s.n_train = args.n_train
        s.dataset_sizes = tuple(n for n in s.dataset_sizes if n < s.n_train) + (s.n_train,)
    studies = [x.strip() for x in args.studies.split(",") if x.strip()]
    return s, studies


def main(argv: Sequence[str] | None = None) -> int:
    from napari_zfocus.errors import ZFocusError

    settings, studies = parse_args(argv)
    try:
        summary = run_studies(settings, studies)
    except ZFocusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(summary))
    print(f"\nwall time {summary['wall_s'] / 60:.1f} min (data {summary['data_s'] / 60:.1f} min); "
          f"summary: {settings.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
