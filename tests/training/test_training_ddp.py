"""DistributedDataParallel: the CLI under torchrun with 2 gloo (CPU) processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

from test_training_loop import make_dataset

from napari_zfocus.model.io import load_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_cpu_processes(tmp_path):
    ds = make_dataset(tmp_path / "ds", n_stacks=4)
    out = tmp_path / "ddp.zfm"
    env = dict(os.environ, ZFOCUS_NO_TCMALLOC="1", OMP_NUM_THREADS="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        "-m", "napari_zfocus.cli", "train", str(ds), "--out", str(out),
        "--steps", "4", "--batch", "4", "--pixel-size-um", "1", "--field-um", "32",
        "--z-range", "-5", "5", "--val-fraction", "0.25", "--no-progress", "--json",
    ]
    # Own process group, so a hang cannot leave torchrun's workers behind.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-3000:]
    # Only rank 0 prints the summary and writes files.
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, stdout
    summary = json.loads(lines[0])
    assert summary["steps"] == 4 and summary["model"] == str(out)
    meta = load_model(out).metadata["training"]
    assert meta["world_size"] == 2
    assert meta["images_seen"] == 4 * 4 * 2
    assert stderr.count("2 processes") == 1  # one start line, from rank 0
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".ddp")]
    assert not leftovers
