"""Smoke test of benchmarks/paper_studies.py: the study runner on a tiny setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _scripts import benchmark_script
from napari_zfocus.errors import ZFocusError


@pytest.fixture(scope="module")
def studies():
    with benchmark_script("paper_studies") as module:
        yield module


def test_plan_trains_the_shared_reference_setting_once(studies):
    runs = studies.plan(studies.StudySettings(), studies.STUDIES)
    # 3 factors + 5 bin sizes + 5 set sizes, the reference (4x, 1 um, 300) counted once.
    assert len(runs) == 11
    ref = studies.RunSpec(4, 1.0, 300)
    assert runs[ref] == ["downsampling", "bins", "dataset_size"]
    assert ref.pixel_size_um == pytest.approx(0.24)
    assert studies.RunSpec(10, 1.0, 300).pixel_size_um == pytest.approx(0.6)


def test_plan_rejects_bad_requests(studies):
    with pytest.raises(ZFocusError, match="unknown studies"):
        studies.plan(studies.StudySettings(), ["batch_size"])
    with pytest.raises(ZFocusError, match="exceeds"):
        studies.plan(studies.StudySettings(n_train=150), ["dataset_size"])


def test_parse_args_budgets(studies):
    s, which = studies.parse_args(["--quick", "--steps-per-run", "0", "--minutes-per-run", "2",
                                   "--studies", "bins"])
    assert s.steps is None and s.minutes == 2.0 and which == ["bins"]
    s, _ = studies.parse_args(["--n-train", "60"])
    assert s.dataset_sizes == (25, 50, 60)


def test_parse_args_seeds(studies):
    s, _ = studies.parse_args(["--seeds", "0,3,7"])
    assert s.seeds == (0, 3, 7)
    with pytest.raises(SystemExit):
        studies.parse_args(["--seeds", "a,b"])


def test_runner_on_a_tiny_setting(studies, tmp_path):
    tmp_path = tmp_path / "run"
    s = studies.StudySettings.quick(tmp_path)
    s.n_slices, s.n_train, s.n_test = 5, 2, 1
    s.factors, s.dataset_sizes, s.steps, s.batch = (4, 10), (1, 2), 2, 2
    s.log = False
    summary = studies.run_studies(s, ["downsampling", "dataset_size"])

    assert summary["studies"] == {
        "downsampling": ["ds4x_bin1um_n2", "ds10x_bin1um_n2"],
        "dataset_size": ["ds4x_bin1um_n1", "ds4x_bin1um_n2"],
    }
    ref = summary["runs"]["ds4x_bin1um_n2_seed0"]
    assert ref["steps"] == 2 and ref["stopped_by"] == "steps"
    assert ref["input_px"] == 62 and ref["n_bins"] == 41
    # One test stack of 5 slices, every slice within the z range: 5 test images.
    assert ref["metrics"]["n_images"] == 5 == len(ref["z_true_um"]) == len(ref["z_argmax_um"])
    assert ref["metrics"]["mse_um2"] >= 0
    assert summary["runs"]["ds10x_bin1um_n2_seed0"]["input_px"] == 25
    for png in summary["figures"]:
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert set(on_disk["runs"]) == {"ds4x_bin1um_n2_seed0", "ds10x_bin1um_n2_seed0",
                                    "ds4x_bin1um_n1_seed0"}
    one = on_disk["by_setting"]["ds4x_bin1um_n2"]
    assert one["seeds"] == [0] and one["ev_within_1um"]["sd"] is None
    assert one["ev_mse_um2"]["mean"] == pytest.approx(ref["metrics"]["mse_um2"])
    table = studies.markdown_table(summary)
    assert table.count("\n") == 2 + 3  # header, rule, 4 rows

    # A second call reuses the finished runs (no retraining) ...
    result = tmp_path / "results" / "ds4x_bin1um_n1_seed0.json"
    stamp = result.stat().st_mtime_ns
    again = studies.run_studies(s, ["dataset_size"])
    assert result.stat().st_mtime_ns == stamp
    assert (again["runs"]["ds4x_bin1um_n1_seed0"]["metrics"]
            == summary["runs"]["ds4x_bin1um_n1_seed0"]["metrics"])
    # ... but not a result made with another budget.
    s.steps = 1
    changed = studies.run_studies(s, ["dataset_size"])
    assert changed["runs"]["ds4x_bin1um_n1_seed0"]["steps"] == 1

    # A second seed trains every setting again; the summary gives mean and SD over both.
    s.seeds = (0, 1)
    both = studies.run_studies(s, ["dataset_size"])
    agg = both["by_setting"]["ds4x_bin1um_n1"]
    assert agg["seeds"] == [0, 1]
    values = [both["runs"][f"ds4x_bin1um_n1_seed{k}"]["metrics"]["mse_um2"] for k in (0, 1)]
    assert agg["ev_mse_um2"]["values"] == pytest.approx(values)
    assert agg["ev_mse_um2"]["mean"] == pytest.approx(sum(values) / 2)
    assert agg["ev_mse_um2"]["sd"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
    assert 0.0 <= agg["share_over_5um"]["mean"] <= 1.0 and len(agg["share_over_5um"]["values"]) == 2
    assert " ± " in studies.markdown_table(both)
