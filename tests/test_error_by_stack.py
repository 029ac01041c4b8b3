"""benchmarks/error_by_stack.py: per-stack errors and what they correlate with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _scripts import benchmark_script
from _tiny import write_noise_dataset, write_untrained_model


@pytest.fixture(scope="module")
def script():
    with benchmark_script("error_by_stack") as module:
        yield module


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
    model = write_untrained_model(tmp_path / "tiny.zfm")
    folder = write_noise_dataset(tmp_path / "ds", 3, (7, 60, 60), focus_index=3)

    rows = script.per_stack_errors(model, folder)
    assert [r["stack"] for r in rows] == ["s0.tif", "s1.tif", "s2.tif"]
    assert all(r["n_images"] == 7 and 0.0 <= r["within_1um"] <= 1.0 for r in rows)
    assert script.main([str(model), str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["stacks"]) == 3 and "slope_correlation" in out
