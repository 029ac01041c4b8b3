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


def test_pooled_weights_stacks_by_their_images(script):
    rows = [{"n_images": 10, "within_1um": 1.0, "n_far": 6, "sign_right_far": 1.0,
             "n_near": 3, "near_within_1um": 1.0, "slope": 0.7},
            {"n_images": 30, "within_1um": 0.0, "n_far": 2, "sign_right_far": 0.5,
             "n_near": 1, "near_within_1um": 0.0, "slope": 1.3},
            {"n_images": 5, "within_1um": 0.2, "n_far": 0, "sign_right_far": float("nan"),
             "n_near": 0, "near_within_1um": float("nan"), "slope": 1.0}]
    total = script.pooled(rows)
    assert total["within_1um"] == pytest.approx(11 / 45)
    assert total["sign_right_far"] == pytest.approx(7 / 8)  # NaN of a stack with none ignored
    assert total["near_within_1um"] == pytest.approx(3 / 4)
    assert total["median_slope"] == pytest.approx(1.0)


def test_sign_and_near_focus_scores_of_a_stack(script, tmp_path, monkeypatch):
    """A model reading z with gain 0.5 has the sign right everywhere and is within 1 um
    near focus, though far from within 1 um overall."""
    import types

    z = np.arange(-10.0, 11.0)
    frame = {"stack": np.array(["s.tif"] * len(z)), "z_true_um": z, "z_pred_um": 0.5 * z}
    fake = types.SimpleNamespace(per_image=frame)
    monkeypatch.setattr("napari_zfocus.inspection.evaluation.evaluate", lambda *a, **k: fake)
    monkeypatch.setattr("napari_zfocus.model.inference.Predictor.from_file",
                        staticmethod(lambda *a, **k: None))
    monkeypatch.setattr("napari_zfocus.data.read_dataset", lambda *a, **k: None)
    (tmp_path / "annotations.csv").write_text("stack,focus_index\ns.tif,10\n")
    (row,) = script.per_stack_errors(tmp_path / "m.zfm", tmp_path)
    assert row["slope"] == pytest.approx(0.5)
    assert row["sign_right_far"] == 1.0 and row["n_far"] == 18
    assert row["near_within_1um"] == 1.0 and row["n_near"] == 3
    assert row["within_1um"] == pytest.approx(5 / 21)  # |0.5 z| <= 1 for |z| <= 2
