"""End-to-end rate of the live autofocus dock with the napari GUI running.

Opens a napari viewer with :class:`~napari_zfocus._qt.live_widget.LiveAutofocusWidget`, starts
live view on the simulated microscope (the dock's default: 256 x 256 px yeast scene,
plane cache + camera noise), with autofocus locked and on, and lets the Qt event loop run
for ``--seconds``. Reports

* ``frames_per_s``: frames grabbed AND processed (model estimate + controller step) by the
  worker thread;
* ``gui_updates_per_s``: frames actually shown (layer data replaced in place);
* ``dropped``: processed results replaced before the GUI took them (latest-only slot);
* ``latency_ms_mean`` / ``_p95``: frame arrival -> shown on the GUI thread;
* ``cpu_per_thread``: share of one core each thread used (Linux), e.g. the loop worker,
  the GUI thread (``python``) and Mesa's software OpenGL threads (``llvmpipe-*``).

The Qt event loop runs as in ``napari.run()`` (it sleeps when idle). The dock's display
pacer decides how many frames are shown: on a machine without a GPU every repaint is
software OpenGL, so few are.

The model is ``--model`` or, by default, an untrained paper CNN (60 um field at 0.24 um/px,
41 bins, 6.8 M parameters): speed does not depend on the weights. Prints one JSON line.

Run (needs a display)::

    xvfb-run -a -s "-screen 0 1600x1000x24" nice -n 10 .venv/bin/python benchmarks/bench_live_gui.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def paper_model(path: Path) -> Path:
    """An untrained paper CNN saved to ``path``."""
    import torch

    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.model.io import save_model
    from napari_zfocus.model.network import build_network

    torch.manual_seed(0)
    config = ModelConfig()
    return save_model(path, build_network(config), config, {"note": "untrained, benchmark"})


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by each thread of this process, by name (Linux only)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        key = f"{name}/{task.name}"
        out[key] = (int(fields[11]) + int(fields[12])) / tick
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement time")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument(
        "--model", type=Path, default=None, help="model file (default: untrained paper CNN)"
    )
    parser.add_argument("--max-fps", type=float, default=None, help="frame-rate cap of the loop")
    parser.add_argument("--no-autofocus", action="store_true", help="estimate only, never move")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import QEventLoop, QTimer

    from napari_zfocus._qt.live_widget import LiveAutofocusWidget

    model = args.model or paper_model(Path(tempfile.mkdtemp(prefix="zfocus-bench-")) / "paper.zfm")
    viewer = napari.Viewer(show=True)
    widget = LiveAutofocusWidget(viewer, model_path=model, max_fps=args.max_fps)
    viewer.window.add_dock_widget(widget, area="right")

    def run_events(seconds: float, until=None) -> None:
        """Run the real Qt event loop (as ``napari.run()`` does) for ``seconds``.

        A ``processEvents()`` + ``sleep`` loop would keep the GUI thread busy and steal
        the CPU and the GIL from the live worker; an event loop sleeps when idle.
        """
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        if until is not None:
            check = QTimer()
            check.setInterval(20)
            check.timeout.connect(lambda: until() and loop.quit())
            check.start()
        loop.exec()

    t_start = time.perf_counter()
    widget.start_live()
    run_events(120, until=lambda: widget.loop is not None and widget.loop.frames > 0)
    if widget.loop is None:
        print("live loop did not start", file=sys.stderr)
        return 1
    startup_s = time.perf_counter() - t_start
    widget._submit(lambda live: live.lock(0.0))  # hold the in-focus position
    widget.autofocus_box.setChecked(not args.no_autofocus)
    run_events(args.warmup)

    loop = widget.loop
    f0, g0, d0 = loop.frames, widget._gui_updates, loop.slot.n_dropped
    latencies: list[float] = []
    # Record each shown frame's latency as the dock shows it (on the GUI thread).
    show = widget._show

    def show_and_record(result) -> None:
        show(result)
        latencies.append(widget._gui_window[-1][1])

    widget._show = show_and_record
    cpu0 = thread_cpu_s()
    t0 = time.perf_counter()
    run_events(args.seconds)
    wall = time.perf_counter() - t0
    cpu1 = thread_cpu_s()
    busy = {name: round((cpu1.get(name, 0.0) - s) / wall, 2) for name, s in cpu0.items()}
    frames = loop.frames - f0
    shown = widget._gui_updates - g0
    controller = widget.live.controller
    true_err = [abs(d.true_defocus_um) for d in list(controller.decisions)[-200:]
                if np.isfinite(d.true_defocus_um)]
    widget.stop_live()
    result = {
        "seconds": round(wall, 2),
        "startup_s": round(startup_s, 2),
        "frames_per_s": round(frames / wall, 1),
        "gui_updates_per_s": round(shown / wall, 1),
        "dropped": loop.slot.n_dropped - d0,
        "latency_ms_mean": round(1e3 * float(np.mean(latencies)), 1) if latencies else None,
        "latency_ms_p95": (
            round(1e3 * float(np.percentile(latencies, 95)), 1) if latencies else None
        ),
        "processing_ms": round(widget.last_stats.processing_ms, 2) if widget.last_stats else None,
        "autofocus": not args.no_autofocus,
        "moves": controller.summary()["moves"],
        "median_true_defocus_um": round(float(np.median(true_err)), 2) if true_err else None,
        "model": str(args.model) if args.model else "untrained paper CNN",
        "cpu_count": os.cpu_count(),
        "cpu_per_thread": {
            k: v for k, v in sorted(busy.items(), key=lambda kv: -kv[1]) if v >= 0.01
        },
    }
    print(json.dumps(result))
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
