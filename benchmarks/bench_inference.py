"""Inference speed of the paper CNN on this machine, trick by trick.

Times, at batch 1 on a raw 2080 x 1552 uint16 frame at 0.06 um/px (the paper's camera):

- ``preprocess``: centre crop + 4x area downsampling + normalisation (``prepare``);
- ``forward_eager``: the network alone, default (NCHW) memory format;
- ``forward_channels_last``: the network alone, channels-last weights and input;
- ``forward_compiled``: channels-last + ``torch.compile`` (optional, ``--compile``);
- ``predict``: the full :meth:`Predictor.predict` path (what ``zfocus bench`` times),
  eager and (with ``--compile``) compiled.

With ``--allocators`` the script re-runs itself under tcmalloc (``LD_PRELOAD``) when
``libtcmalloc_minimal.so.4`` is installed, so both allocators are compared in one go.
Each run prints one JSON line per measurement. Shared machines are noisy: compare
ratios within one run, and check the load (``uptime``) first.

Usage::

    python benchmarks/bench_inference.py [--repeats 100] [--compile] [--allocators] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from napari_zfocus.cli.bench import CHILD_ENV, allocator_in_use, make_frames, tcmalloc_library
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.inference import Predictor, available_cores
from napari_zfocus.model.network import build_network, count_parameters
from napari_zfocus.model.preprocess import prepare


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 5) -> dict[str, float]:
    """Median and p90 latency of ``fn`` in ms."""
    for _ in range(warmup):
        fn()
    t = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        t[i] = time.perf_counter() - t0
    return {"ms_p50": float(np.median(t) * 1e3), "ms_p90": float(np.percentile(t, 90) * 1e3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--allocators", action="store_true", help="re-run under tcmalloc too")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = ap.parse_args()

    threads = args.threads or available_cores()
    torch.set_num_threads(threads)
    config = ModelConfig()  # the paper's best setting: 60 um at 0.24 um/px, 41 bins
    torch.manual_seed(0)
    net = build_network(config).eval()
    common = {
        "allocator": allocator_in_use(),
        "threads": threads,
        "torch": torch.__version__,
        "params": count_parameters(net),
        "input_px": config.input_px,
    }
    frames = make_frames()
    frame = frames[0]

    def emit(name: str, result: dict[str, float]) -> None:
        print(json.dumps({"measure": name, **result, **common}), flush=True)

    emit("preprocess", timeit(lambda: prepare(frame, 0.06, config), args.repeats))
    x = prepare(frame, 0.06, config)
    with torch.inference_mode():
        emit("forward_eager", timeit(lambda: net(x), args.repeats))
        net_cl = build_network(config).eval().to(memory_format=torch.channels_last)
        net_cl.load_state_dict(net.state_dict())
        x_cl = x.contiguous(memory_format=torch.channels_last)
        emit("forward_channels_last", timeit(lambda: net_cl(x_cl), args.repeats))
        if args.compile:
            t0 = time.perf_counter()
            compiled = torch.compile(net_cl)
            compiled(x_cl)
            emit("compile_time", {"s": time.perf_counter() - t0})
            emit("forward_compiled", timeit(lambda: compiled(x_cl), args.repeats))

    pred = Predictor(net, config, device="cpu", num_threads=threads)
    emit("predict", timeit(lambda: pred.predict(frame, 0.06).z_um, args.repeats))
    if args.compile:
        pred_c = Predictor(
            build_network(config), config, device="cpu", compile=True, num_threads=threads
        )
        emit("predict_compiled", timeit(lambda: pred_c.predict(frame, 0.06).z_um, args.repeats))

    lib = tcmalloc_library()
    if args.allocators and lib and not os.environ.get(CHILD_ENV):
        env = dict(os.environ, LD_PRELOAD=lib, **{CHILD_ENV: "1"})
        argv = [sys.executable, __file__, "--repeats", str(args.repeats), "--threads", str(threads)]
        if args.compile:
            argv.append("--compile")
        return subprocess.run(argv, env=env, check=False).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
