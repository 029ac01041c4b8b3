"""``zfocus bench``: JSON contract on the full raw-frame path; exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _tiny import TINY
from napari_zfocus.cli import main
from napari_zfocus.cli.bench import FRAME_SHAPE
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import save_model
from napari_zfocus.model.network import build_network

KEYS = {
    "frames_per_second",
    "latency_ms_p50",
    "latency_ms_p99",
    "device",
    "torch_version",
    "threads",
    "warmup",
    "frames",
    "allocator",
}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    config = ModelConfig(**TINY)
    return save_model(tmp_path_factory.mktemp("bench") / "tiny.zfm", build_network(config), config)


def test_bench_json_is_the_last_line(model: Path, capsys) -> None:
    argv = [
        "bench",
        str(model),
        "--frames",
        "5",
        "--warmup",
        "1",
        "--allocator",
        "default",
        "--json",
    ]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(d) >= KEYS
    assert d["frames"] == 5 and d["warmup"] == 1 and d["device"] == "cpu"
    assert d["frames_requested"] == 5 and d["interrupted"] is False
    assert d["frame_shape"] == list(FRAME_SHAPE) == [1552, 2080]
    assert 0 < d["latency_ms_p50"] <= d["latency_ms_p99"]
    assert d["frames_per_second"] > 0 and d["threads"] == torch.get_num_threads()


def test_tcmalloc_rerun_sets_preload_and_guard(model: Path, monkeypatch) -> None:
    # The real re-run costs a fresh interpreter; check what it would launch instead.
    import napari_zfocus.cli.bench as bench

    calls = []

    class FakeChild:
        def __init__(self, argv, env):
            calls.append((argv, env))

        def wait(self):
            return 0

    monkeypatch.setattr(bench, "tcmalloc_library", lambda: "/fake/libtcmalloc_minimal.so.4")
    monkeypatch.setattr(bench, "allocator_in_use", lambda: "default")
    monkeypatch.setattr(bench.subprocess, "Popen", FakeChild)
    monkeypatch.delenv(bench.CHILD_ENV, raising=False)
    assert main(["bench", str(model), "--frames", "3", "--json"]) == 0
    ((argv, env),) = calls
    assert env["LD_PRELOAD"].startswith("/fake/libtcmalloc_minimal.so.4")
    assert env[bench.CHILD_ENV] == "1"
    assert argv[1:5] == ["-m", "napari_zfocus.cli", "bench", str(model)]
    assert "--json" in argv and argv[argv.index("--frames") + 1] == "3"
    # inside the child (guard set) it never re-runs again
    monkeypatch.setenv(bench.CHILD_ENV, "1")
    monkeypatch.setattr(
        bench,
        "benchmark",
        lambda p, f, w: {
            "frames_per_second": 1.0,
            "latency_ms_p50": 1.0,
            "latency_ms_p99": 1.0,
            "latency_ms_mean": 1.0,
        },
    )
    assert main(["bench", str(model), "--frames", "3"]) == 0
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--frames", "0"], "--frames"), (["--allocator", "default"], "refusing")],
)
def test_bad_input_exits_2(model: Path, tmp_path: Path, capsys, args, message) -> None:
    target = model
    if message == "refusing":
        target = tmp_path / "pickle.zfm"
        torch.save({"x": 1}, target)
    assert main(["bench", str(target), *args]) == 2
    assert message in capsys.readouterr().err


def test_ctrl_c_reports_the_frames_timed_and_exits_130(model: Path, monkeypatch, capsys) -> None:
    """Ctrl-C (KeyboardInterrupt inside a timed frame) ends the run: the JSON covers only
    the frames actually timed, says so, and the exit code is 130, not 0."""
    from napari_zfocus.model.inference import Predictor

    real = Predictor.predict
    calls = []

    def predict_then_ctrl_c(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # warmup 1 + 2 timed frames, then Ctrl-C in the 3rd
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict", predict_then_ctrl_c)
    code = main(["bench", str(model), "--frames", "1000", "--warmup", "1", "--device", "cpu",
                 "--allocator", "default", "--json"])
    captured = capsys.readouterr()
    assert code == 130
    d = json.loads(captured.out.strip().splitlines()[-1])
    assert d["frames"] == 2 and d["frames_requested"] == 1000 and d["interrupted"] is True
    assert "interrupted after 2 of 1000" in captured.err
