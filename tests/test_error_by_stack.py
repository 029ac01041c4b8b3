"""benchmarks/error_by_stack.py: per-stack errors and what they correlate with."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import TINY

from napari_zfocus.data import Annotation, write_annotations, write_stack
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import save_model
from napari_zfocus.model.network import build_network

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "error_by_stack.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("error_by_stack", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_correlations_find_the_column_the_slope_follows(script):
    rng = np.random.default_rng(0)
    na = rng.uniform(0.3, 0.45, 20)
    rows = [{"stack": f"s{i}.tif", "focus_index": "5", "condenser_na": f"{a:.3f}",
             "photons": f"{rng.uniform(1000, 8000):.0f}", "label": "x",
             "slope": 0.5 + 1.5 * a + 0.001 * rng.normal(), "within_1um": 1.0}
            for i, a in enumerate(na)]
    corr = script.correlations(rows)
    assert set(corr) == {"condenser_na", "photons"}  # text and bookkeeping columns skipped
    assert corr["condenser_na"] > 0.99 and abs(corr["photons"]) < 0.6


def test_per_stack_rows_on_a_tiny_model(script, tmp_path, capsys):
    torch.manual_seed(0)
    config = ModelConfig(**TINY)
    model = save_model(tmp_path / "tiny.zfm", build_network(config), config)
    folder = tmp_path / "ds"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for k in range(3):
        write_stack(folder / f"s{k}.tif", rng.integers(900, 1100, (7, 60, 60)).astype(np.uint16),
                    z_step_um=1.0, pixel_size_um=0.24)
    write_annotations(folder, [Annotation(f"s{k}.tif", 3, 1.0, 0.24) for k in range(3)])

    rows = script.per_stack_errors(model, folder)
    assert [r["stack"] for r in rows] == ["s0.tif", "s1.tif", "s2.tif"]
    assert all(r["n_images"] == 7 and 0.0 <= r["within_1um"] <= 1.0 for r in rows)
    assert script.main([str(model), str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["stacks"]) == 3 and "slope_correlation" in out
    sys.modules.pop("error_by_stack", None)
