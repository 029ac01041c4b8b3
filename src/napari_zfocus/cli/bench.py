"""``zfocus bench MODEL``: time the full live path, raw camera frame -> z estimate.

Each timed call is exactly what the live loop does per frame: a raw 2080 x 1552 uint16
frame at 0.06 um/px goes through :meth:`Predictor.predict` (centre crop, resampling,
normalisation, forward pass, readout) at batch 1. The last stdout line (with ``--json``)
is one JSON object with ``frames_per_second``, ``latency_ms_p50``, ``latency_ms_p99``,
``latency_ms_mean``, ``device``, ``torch_version``, ``threads``, ``warmup``, ``frames``
(timed), ``frames_requested``, ``interrupted``, ``compiled``, ``allocator``. Ctrl-C ends
it early: it reports the frames timed so far and exits with 130.

Speed tricks: channels-last weights (always), optional ``torch.compile`` (``--compile``)
and tcmalloc. glibc's allocator is slow for the large short-lived tensors of a CNN, so
when ``libtcmalloc_minimal.so.4`` is installed the benchmark re-runs itself once in a
child process with ``LD_PRELOAD`` set (``--allocator default`` turns that off; the
``ZFOCUS_TCMALLOC_CHILD`` environment variable stops it from ever looping).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_zfocus._json import to_json_line
from napari_zfocus.cli import _args

#: Where Debian/Ubuntu's libtcmalloc-minimal4 puts the library.
TCMALLOC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
)
#: Set in the child process so it never re-runs itself again.
CHILD_ENV = "ZFOCUS_TCMALLOC_CHILD"

FRAME_SHAPE = (1552, 2080)  # (Y, X): the paper's 2080 x 1552 px camera
FRAME_PIXEL_UM = 0.06


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` sub-command."""
    p = subparsers.add_parser(
        "bench",
        help="time raw frame -> z estimate (live path, batch 1)",
        description="Time the full live path from a raw 2080 x 1552 uint16 frame at 0.06 um/px "
        "to a z estimate, one frame at a time.",
    )
    p.add_argument("model", type=Path, help="model file (.zfm)")
    p.add_argument("--frames", type=_args.integer(1, _args.MAX_BENCH_FRAMES), default=200,
                   help="timed frames (default 200)")
    p.add_argument("--warmup", type=_args.integer(0, _args.MAX_BENCH_FRAMES), default=20,
                   help="untimed frames first (default 20)")
    p.add_argument("--device", type=_args.DEVICE, default=None,
                   help="torch device: auto, cpu, cuda, cuda:N, mps (default: cuda if available)")
    p.add_argument("--threads", type=_args.THREADS, default=None,
                   help="torch threads (default: all cores)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network (slow first call; falls back to eager)",
    )
    p.add_argument(
        "--allocator",
        choices=("auto", "default"),
        default="auto",
        help="auto: re-run under tcmalloc when installed; default: glibc malloc",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)
    return p


def tcmalloc_library() -> str | None:
    """Path of an installed ``libtcmalloc_minimal.so.4``, or ``None``."""
    for path in TCMALLOC_CANDIDATES:
        if os.path.exists(path):
            return path
    return None


def allocator_in_use() -> str:
    """``"tcmalloc"`` when that library is mapped into this process, else ``"default"``."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            return "tcmalloc" if "tcmalloc" in fh.read() else "default"
    except OSError:
        return "default"


def _child_argv(args: argparse.Namespace) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "napari_zfocus.cli",
        "bench",
        str(args.model),
        "--frames",
        str(args.frames),
        "--warmup",
        str(args.warmup),
    ]
    if args.device:
        argv += ["--device", str(args.device)]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if args.compile:
        argv.append("--compile")
    if args.json:
        argv.append("--json")
    return argv


def _rerun_with_tcmalloc(args: argparse.Namespace) -> int | None:
    """Run this benchmark again under tcmalloc; its exit code, or ``None`` if not done."""
    lib = tcmalloc_library()
    if (
        args.allocator != "auto"
        or lib is None
        or os.environ.get(CHILD_ENV)
        or allocator_in_use() == "tcmalloc"
    ):
        return None
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(filter(None, [lib, env.get("LD_PRELOAD", "")]))
    env[CHILD_ENV] = "1"
    sys.stdout.flush()
    try:
        child = subprocess.Popen(_child_argv(args), env=env)
    except OSError:
        return None
    try:
        return child.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached the child too: let it report the frames it timed, then exit
        # with its code (130), instead of killing it before it prints.
        return child.wait()
    except BaseException:
        child.terminate()  # SIGTERM or an error here: never leave the child running
        child.wait()
        raise


def make_frames(n: int = 4, seed: int = 0) -> list[np.ndarray]:
    """``n`` distinct raw uint16 frames (so no frame sits in cache between calls)."""
    rng = np.random.default_rng(seed)
    y = np.cos(np.arange(FRAME_SHAPE[0]) / 23.0)[:, None]
    x = np.sin(np.arange(FRAME_SHAPE[1]) / 37.0)[None, :]
    base = (3000 + 500 * y * x).astype(np.uint16)  # smooth texture, cheap to build
    return [base + rng.integers(0, 400, FRAME_SHAPE, dtype=np.uint16) for _ in range(n)]


def benchmark(predictor: Any, frames: int, warmup: int) -> dict[str, Any]:
    """Time ``predictor.predict`` on raw frames; return the measurements.

    Ctrl-C during the timed frames ends the benchmark early: the result then covers the
    frames actually timed (``frames``) and says ``interrupted``. Ctrl-C before the first
    timed frame propagates (there is nothing to report).
    """
    raw = make_frames()
    for i in range(warmup):
        predictor.predict(raw[i % len(raw)], FRAME_PIXEL_UM)
    lat = np.empty(frames)
    done = 0
    interrupted = False
    start = time.perf_counter()
    try:
        for i in range(frames):
            t0 = time.perf_counter()
            pred = predictor.predict(raw[i % len(raw)], FRAME_PIXEL_UM)
            _ = pred.z_um
            lat[i] = time.perf_counter() - t0
            done = i + 1
    except KeyboardInterrupt:
        if done == 0:
            raise
        interrupted = True
    wall = time.perf_counter() - start
    lat = lat[:done]
    return {
        "frames_per_second": done / wall,
        "latency_ms_p50": float(np.percentile(lat, 50) * 1e3),
        "latency_ms_p99": float(np.percentile(lat, 99) * 1e3),
        "latency_ms_mean": float(lat.mean() * 1e3),
        "frames": done,
        "interrupted": interrupted,
    }


def run(args: argparse.Namespace) -> int:
    """Run ``zfocus bench``."""
    from napari_zfocus.errors import ZFocusError

    if args.frames < 1 or args.warmup < 0:
        raise ZFocusError("--frames must be >= 1 and --warmup >= 0")
    code = _rerun_with_tcmalloc(args)
    if code is not None:
        return code

    import torch

    from napari_zfocus.model.inference import Predictor, available_cores

    # A benchmark owns its process: it sets torch's threads (default all usable cores),
    # which a Predictor never does unless asked.
    predictor = Predictor.from_file(
        args.model, device=args.device, compile=args.compile,
        num_threads=args.threads or available_cores(),
    )
    result = benchmark(predictor, args.frames, args.warmup)
    result.update(
        frames_requested=args.frames,
        warmup=args.warmup,
        device=str(predictor.device),
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
        compiled=predictor.compiled,
        allocator=allocator_in_use(),
        channels_last=True,
        frame_shape=list(FRAME_SHAPE),
        frame_pixel_size_um=FRAME_PIXEL_UM,
        model_input_px=predictor.config.input_px,
        model=str(args.model),
    )
    print(
        f"{result['frames_per_second']:.1f} frames/s  p50 {result['latency_ms_p50']:.2f} ms  "
        f"p99 {result['latency_ms_p99']:.2f} ms  ({result['device']}, {result['threads']} threads, "
        f"allocator {result['allocator']}, compiled {result['compiled']}, "
        f"torch {torch.__version__})"
    )
    if result.get("interrupted"):
        print(f"zfocus bench: interrupted after {result['frames']} of {args.frames} timed "
              "frames", file=sys.stderr)
    if args.json:
        print(to_json_line(result))
    return 130 if result.get("interrupted") else 0
