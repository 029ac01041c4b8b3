"""The names of model.inference and model.io stay importable there after their split."""

from __future__ import annotations

import warnings

import pytest
import torch

from napari_zfocus.model import file_checks, inference, io, prediction, torch_runtime


def test_moved_names_are_the_same_objects_at_their_old_addresses() -> None:
    assert inference.Prediction is prediction.Prediction
    assert inference._cudnn_benchmark is torch_runtime.cudnn_benchmark
    assert io.FORMAT_NAME == file_checks.FORMAT_NAME
    assert io.FORMAT_VERSION == file_checks.FORMAT_VERSION
    assert io.WEIGHTS_ONLY_HASH_VERSION == file_checks.WEIGHTS_ONLY_HASH_VERSION
    for module in (inference, io):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_autocast_on_the_cpu_leaves_full_precision_and_cudnn_alone() -> None:
    before = torch.backends.cudnn.benchmark
    net = torch.nn.Linear(4, 2)
    with torch.inference_mode(), torch_runtime.autocast(torch.device("cpu")):
        out = net(torch.ones(1, 4))
        assert torch.backends.cudnn.benchmark == before
    assert out.dtype == torch.float32


def test_compile_failure_is_raised_to_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the caller warns; this helper must not
        with pytest.raises(RuntimeError, match="no compiler"):
            torch_runtime.compile_network(torch.nn.Identity(), torch.device("cpu"), 8)
