"""Speed of the simulated multi-position scope under a real pymmcore-plus MDA run.

Runs a time-lapse on :class:`~napari_zfocus.acquisition.simulated_scope.SimulatedScope`
(default: 4 positions, 24 h every 10 minutes = 580 position visits) with the default
pymmcore-plus ``MDAEngine`` on simulated time, three frames per visit like an autofocus
acquisition: a bright-field focus frame at the z of the previous visit, then a bright-field
and a fluorescence frame at the true focus (an oracle refocus in place of the CNN).

Reports the time per snap (the camera's render, measured around the scope's frame
function) for bright field from cached planes, bright field that had to render (a new scene
every ``--scene-update-s``, or planes at a new defocus), and fluorescence; and the wall
time per frame of the whole run (engine, metadata, signals included) and its CPU time
(less sensitive to other jobs on a shared machine). Prints human-readable lines, then one
JSON line::

    python benchmarks/bench_simulated_scope.py
    python benchmarks/bench_simulated_scope.py --hours 2 --renderer pattern
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from napari_zfocus._json import to_json_line
from napari_zfocus.acquisition.simulated_scope import (
    SimulatedScope,
    SimulatedScopeSettings,
    simulated_waits,
)


def oracle_engine(scope: SimulatedScope) -> Any:
    """Default engine that focuses each visit's frames 1 and 2 on the true focus z."""
    from pymmcore_plus.mda import MDAEngine

    last_z = {p.name: float(p.z or 0.0) for p in scope.position_list()}

    class OracleEngine(MDAEngine):
        def setup_single_event(self, event: Any) -> None:
            p = event.index.get("p", 0)
            name = f"p{p}"
            if event.index.get("c", 0) > 0:
                last_z[name] = scope.focus_z_um(p)
            event = event.model_copy(update={"z_pos": last_z[name]})
            super().setup_single_event(event)

    return OracleEngine(scope.core, use_hardware_sequencing=False)


def run(hours: float, positions: int, renderer: str, scene_update_s: float, seed: int) -> dict:
    """One acquisition; timings of every snap by kind."""
    import useq

    settings = SimulatedScopeSettings(positions=positions, renderer=renderer, seed=seed,
                                      scene_update_s=scene_update_s)
    t_setup = time.perf_counter()
    scope = SimulatedScope(settings)
    setup_s = time.perf_counter() - t_setup
    times: dict[str, list[float]] = {"bf": [], "bf_render": [], "fl": []}
    render = scope.render_frame

    def timed_render(exposure_ms: float) -> Any:
        renders, t0 = scope.renders, time.perf_counter()
        out = render(exposure_ms)
        dt = time.perf_counter() - t0
        snap = scope.last_snap
        kind = "fl" if snap is not None and snap.channel == "FL" else (
            "bf_render" if scope.renders > renders else "bf")
        times[kind].append(dt)
        return out

    scope.render_frame = timed_render  # type: ignore[method-assign]  # the camera calls it
    core = scope.core
    core.mda.set_engine(oracle_engine(scope))
    loops = int(round(hours * 6)) + 1
    sequence = useq.MDASequence(
        stage_positions=scope.position_list(), channels=["BF", "BF", "FL"],
        time_plan={"interval": 600, "loops": loops},
    )
    t0, cpu0 = time.perf_counter(), time.process_time()
    with simulated_waits(scope):
        core.mda.run(sequence)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    frames = scope.snaps
    result = {
        "positions": positions, "hours": hours, "renderer": renderer,
        "scene_update_s": scene_update_s, "visits": loops * positions, "frames": frames,
        "setup_s": setup_s, "run_s": wall, "ms_per_frame_run": 1000 * wall / frames,
        "cpu_ms_per_frame_run": 1000 * cpu / frames,
        "simulated_h": scope.clock.now() / 3600, "scene_renders": scope.renders,
    }
    for kind, values in times.items():
        result[f"n_{kind}"] = len(values)
        result[f"ms_{kind}"] = 1000 * float(np.mean(values)) if values else float("nan")
    result["ms_per_snap"] = 1000 * sum(map(sum, times.values())) / frames
    del core
    scope.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--positions", type=int, default=4)
    parser.add_argument("--renderer", choices=("simulator", "pattern"), default="simulator")
    parser.add_argument("--scene-update-s", type=float,
                        default=SimulatedScopeSettings.scene_update_s)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    r = run(args.hours, args.positions, args.renderer, args.scene_update_s, args.seed)
    print(f"{r['visits']} visits, {r['frames']} frames, {r['simulated_h']:.1f} simulated h "
          f"in {r['run_s']:.1f} s (+{r['setup_s']:.1f} s set-up)")
    print(f"per snap: BF from cached planes {r['ms_bf']:.1f} ms (n={r['n_bf']}), BF that "
          f"rendered (new scene or planes) {r['ms_bf_render']:.1f} ms (n={r['n_bf_render']}), "
          f"FL {r['ms_fl']:.1f} ms "
          f"(n={r['n_fl']}); mean {r['ms_per_snap']:.1f} ms per snap, "
          f"{r['ms_per_frame_run']:.1f} ms per frame for the whole run "
          f"({r['cpu_ms_per_frame_run']:.1f} ms of CPU time, all threads)")
    print(to_json_line(r))


if __name__ == "__main__":
    main()
