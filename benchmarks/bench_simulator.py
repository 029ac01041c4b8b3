"""Time the bright-field simulator.

Usage::

    python benchmarks/bench_simulator.py [--repeats 5] [--cells 40] [--workers 2]

Prints the median seconds per 31 x 320 x 320 stack (0.24 um/px, 16 source points; target
< 3 s on the 2-core CPU) and the time to render 201 planes of one 256 x 256 scene (the
simulated microscope's fine z-stack, every 0.25 um over +/-25 um).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import numpy as np

from napari_zfocus.simulation import (
    OpticalRenderer,
    OpticsParams,
    SampleParams,
    Scene,
    SimulationParams,
    simulate_stack,
)


def median_time(fn, repeats: int) -> tuple[float, list[float], float]:
    """Median and all wall-clock times of ``repeats`` calls of ``fn`` (after one warm-up),
    and the median CPU time (all threads): on a shared machine the CPU time shows the work
    even when other jobs stretch the wall-clock time."""
    fn()
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), times, statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cells", type=float, nargs="*", default=[40.0, 300.0],
                        help="cell counts to time (default: 40 and 300)")
    parser.add_argument("--workers", type=int, default=2, help="scipy.fft threads")
    parser.add_argument("--source-points", type=int, default=16)
    args = parser.parse_args()
    optics = OpticsParams(workers=args.workers, n_source_points=args.source_points)
    # Shared machines are noisy: say how busy this one was.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, "
          f"scipy.fft workers={args.workers}")

    for n_cells in args.cells:
        params = SimulationParams(n_cells=n_cells, optics=optics)
        seeds = iter(range(10_000))
        med, times, cpu = median_time(
            lambda params=params, seeds=seeds: simulate_stack(params, seed=next(seeds)),
            args.repeats,
        )
        print(f"simulate_stack 31x320x320, {n_cells:.0f} cells: median {med:.2f} s per stack, "
              f"CPU {cpu:.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)})")

    rng = np.random.default_rng(0)
    scene = Scene.random(SampleParams(n_cells=100), rng, (256, 256), 0.24)
    z = np.arange(-25, 25.001, 0.25)
    for k in sorted({args.source_points, 8}):
        renderer = OpticalRenderer(dataclasses.replace(optics, n_source_points=k))
        med, _, cpu = median_time(
            lambda renderer=renderer: renderer.render(scene, z), max(1, args.repeats // 2)
        )
        print(f"OpticalRenderer.render {len(z)} planes of 256x256, {k} source points: "
              f"median {med:.2f} s "
              f"({len(z) / med:.0f} planes/s), CPU {cpu:.2f} s")


if __name__ == "__main__":
    main()
