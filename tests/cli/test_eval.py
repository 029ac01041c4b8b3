"""``zfocus eval``: JSON contract, table, plots, baselines; exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _tiny import write_noise_dataset, write_untrained_model
from napari_zfocus.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("eval")
    model = write_untrained_model(d / "tiny.zfm")
    # 13 slices, focus at 6: z -6..+6 um, of which -5..+5 (11 slices) are in range
    ds = write_noise_dataset(d / "dataset", 3, (13, 56, 60), focus_index=6)
    bad = d / "bad_dataset"
    bad.mkdir()
    (bad / "annotations.csv").write_text(
        "stack,focus_index,z_step_um,pixel_size_um\nmissing.tif,3,1.0,0.24\n"
    )
    return {"model": model, "dataset": ds, "bad_dataset": bad, "dir": d}


def test_eval_json_table_plots_and_baselines(setup, capsys, tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    argv = [
        "eval",
        str(setup["model"]),
        str(setup["dataset"]),
        "--json",
        "--baselines",
        "--plots",
        str(plots),
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out.strip().splitlines()[-1])
    assert d["n_images"] == 33
    for key in ("median_abs_error_um", "within_1um", "mse_um2", "bias_um", "sign_accuracy"):
        assert isinstance(d[key], float), key
    assert 0.0 <= d["within_1um"] <= 1.0
    assert set(d["baselines"]) == {
        "variance_of_laplacian",
        "brenner",
        "tenengrad",
        "normalized_variance",
    }
    assert d["baselines"]["brenner"]["n_images"] == 33
    assert {p.name for p in plots.iterdir()} >= {
        "error_histogram.png",
        "confusion.png",
        "per_image_errors.csv",
        "confusion_matrix.csv",
    }
    assert main(["eval", str(setup["model"]), str(setup["dataset"]), "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "median |error| (um)" in table and "within 1 um" in table


@pytest.mark.parametrize("case", ["bad_dataset", "no_dataset", "tampered_model"])
def test_bad_input_exits_2_with_one_line(setup, capsys, tmp_path: Path, case: str) -> None:
    model, dataset = setup["model"], setup["dataset"]
    if case == "bad_dataset":
        dataset = setup["bad_dataset"]
    elif case == "no_dataset":
        dataset = tmp_path / "nowhere"
    else:
        data = bytearray(model.read_bytes())
        data[-10] ^= 0xFF  # flip bits inside the weights
        model = tmp_path / "tampered.zfm"
        model.write_bytes(bytes(data))
    assert main(["eval", str(model), str(dataset), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zfocus eval: error:")
    assert str(model if case == "tampered_model" else dataset) in err[0] or case == "bad_dataset"
