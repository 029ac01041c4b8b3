"""Benchmark of the live autofocus on the simulated microscope.

Measures, on this machine:

1. ``camera_fps``: frames/s of the simulated camera alone (256 x 256 yeast scene, plane
   cache + interpolation + camera noise), while the defocus wanders over +/-2 um;
2. ``loop_fps``: frames/s of the full live loop (snap + model + controller step + move)
   with the paper CNN (an untrained one unless ``--model`` is given: speed does not depend
   on the weights);
3. with ``--session-hours H``: a headless session (``run_simulated_session``) of H simulated
   hours with the paper's 40 um drift, scored on the TRUE focus error; with a model
   (``--model``) or the oracle (true defocus + ``--oracle-noise`` um).

Prints human-readable lines, then one JSON line. Run with ``nice -n 10`` on shared machines::

    python benchmarks/bench_live.py --frames 300
    python benchmarks/bench_live.py --session-hours 24 --oracle-noise 0.3
    python benchmarks/bench_live.py --model model.zfm --session-hours 24
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from napari_zfocus._json import to_json_line
from napari_zfocus.live.controller import ControllerSettings, FocusController
from napari_zfocus.live.frame_loop import drive_frames
from napari_zfocus.live.headless import run_simulated_session
from napari_zfocus.live.microscope import Frame
from napari_zfocus.live.simulated_microscope import SimulatedMicroscope


def bench_camera(n_frames: int, seed: int) -> dict:
    """Snap rate of the simulated camera with the defocus wandering over +/-2 um."""
    mic = SimulatedMicroscope(seed=seed)
    mic.snap()  # first scene render is set-up, not frame rate
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(n_frames):
        mic.move_z_to(float(rng.uniform(-2, 2)))
        mic.snap()
    wall = time.perf_counter() - t0
    mic.close()
    return {"camera_fps": n_frames / wall, "camera_frames": n_frames,
            "camera_renders": mic.n_renders}


def paper_model(path: Path) -> Path:
    """Save an untrained paper CNN (speed is independent of the weights)."""
    import torch

    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.model.io import save_model
    from napari_zfocus.model.network import build_network

    torch.manual_seed(0)
    config = ModelConfig()
    return save_model(path, build_network(config).eval(), config)


def bench_loop(model: Path, n_frames: int, seed: int) -> dict:
    """Full loop rate: snap + predict + controller step (moves included)."""
    from napari_zfocus.model.inference import Predictor

    predictor = Predictor.from_file(model)
    mic = SimulatedMicroscope(seed=seed)
    ctrl = FocusController(predictor, mic, ControllerSettings(min_confidence=0.0))
    ctrl.lock(0.0)
    for _ in range(5):  # warm-up (first render, lazy torch set-up)
        ctrl.step()

    def frames() -> Iterator[Frame]:
        for _ in range(n_frames):
            mic.clock.advance(0.05)  # 20 Hz in simulated time, as in the paper
            yield mic.snap()

    t0 = time.perf_counter()
    for _ in drive_frames(frames(), ctrl.step):  # the loop every live stream runs
        pass
    wall = time.perf_counter() - t0
    mic.close()
    return {"loop_fps": n_frames / wall, "loop_frames": n_frames,
            "loop_moves": ctrl.summary()["moves"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=300, help="frames per rate measurement")
    p.add_argument("--model", help="model file (default: an untrained paper CNN for speed)")
    p.add_argument("--session-hours", type=float, default=0.0, help="also run a session")
    p.add_argument("--drift-um", type=float, default=40.0)
    p.add_argument("--interval-s", type=float, default=5.0)
    p.add_argument("--oracle-noise", type=float, default=None,
                   help="session: oracle predictor with this noise instead of --model")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    out: dict = {}
    out.update(bench_camera(args.frames, args.seed))
    print(f"simulated camera: {out['camera_fps']:.1f} frames/s "
          f"({args.frames} frames, {out['camera_renders']} plane renders)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else paper_model(Path(tmp) / "paper_cnn.zfm")
        out.update(bench_loop(model, args.frames, args.seed))
        print(f"live loop (snap + model + controller): {out['loop_fps']:.1f} frames/s", flush=True)
        if args.session_hours > 0:
            if args.model is None and args.oracle_noise is None:
                print("session needs --model or --oracle-noise", file=sys.stderr)
                return 2

            def progress(done: int, total: int, d) -> None:
                if done % max(1, total // 10) == 0:
                    print(f"  {done}/{total} frames, true error {d.true_defocus_um:+.2f} um",
                          flush=True)

            result = run_simulated_session(
                args.model if args.oracle_noise is None else None,
                hours=args.session_hours, drift_um=args.drift_um,
                frame_interval_s=args.interval_s, seed=args.seed, progress=progress,
                oracle_noise_um=args.oracle_noise,
            )
            session = result.to_dict()
            out["session"] = session
            print(f"session: {session['frames']} frames, {100 * session['within_1um']:.2f} % "
                  f"within +/-1 um, max |error| {session['max_abs_error_um']:.2f} um, "
                  f"max step {session['max_step_um']:.2f} um, stage "
                  f"{session['stage_range_um'][0]:+.1f}..{session['stage_range_um'][1]:+.1f} um, "
                  f"{session['fps']:.1f} frames/s", flush=True)
    print(to_json_line(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
