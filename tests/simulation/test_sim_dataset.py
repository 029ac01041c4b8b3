"""simulate_dataset and `zfocus simulate` write a valid interchange-format dataset."""

from __future__ import annotations

import numpy as np
import pytest

from napari_zfocus.cli import main
from napari_zfocus.data import read_dataset
from napari_zfocus.errors import ZFocusError
from napari_zfocus.simulation import simulate_dataset, simulate_stack, stack_seed


def test_simulate_dataset_round_trips_through_the_data_layer(tmp_path, small_params):
    calls = []
    csv = simulate_dataset(tmp_path / "ds", 2, seed=7, params=small_params,
                           progress=lambda done, total: calls.append((done, total)))
    assert csv == tmp_path / "ds" / "annotations.csv"
    assert calls == [(1, 2), (2, 2)]
    ds = read_dataset(tmp_path / "ds")
    assert [a.stack for a in ds.annotations] == ["stack_000.tif", "stack_001.tif"]
    a = ds.annotations[1]
    stack = ds.open_stack(a)
    assert stack.data.shape == (31, 64, 64)
    assert stack.z_step_um == pytest.approx(1.0) and stack.pixel_size_um == pytest.approx(0.24)
    # The file holds exactly what simulate_stack gives for that stack's seed.
    expected = simulate_stack(small_params, seed=stack_seed(7, 1))
    np.testing.assert_array_equal(np.asarray(stack.data), expected.data)
    assert a.focus_index == expected.focus_index
    assert set(a.extra) >= {"n_cells", "ceiling_fraction", "condenser_na"}


def test_refuses_to_overwrite_without_being_asked(tmp_path, small_params):
    simulate_dataset(tmp_path, 1, params=small_params)
    with pytest.raises(ZFocusError, match="annotations.csv"):
        simulate_dataset(tmp_path, 1, params=small_params)
    simulate_dataset(tmp_path, 1, seed=1, params=small_params, overwrite=True)


def test_cli_writes_dataset(tmp_path, capsys):
    out = tmp_path / "sim"
    rc = main(["simulate", str(out), "--stacks", "2", "--seed", "3", "--slices", "11",
               "--size", "48", "--z-step", "2", "--cells", "5,10", "--ceiling-fraction", "0.5",
               "--condenser-na", "0.4", "--source-points", "6", "--quiet"])
    assert rc == 0
    assert "annotations.csv" in capsys.readouterr().out
    header = (out / "annotations.csv").read_text().splitlines()[0]
    assert header.startswith("stack,focus_index,z_step_um,pixel_size_um")
    ds = read_dataset(out)
    assert len(ds.annotations) == 2
    for a in ds.annotations:
        assert 0 <= a.focus_index < 11 and a.z_step_um == 2.0
        assert a.extra["ceiling_fraction"] == "0.500" and a.extra["condenser_na"] == "0.400"
        assert ds.open_stack(a).data.shape == (11, 48, 48)


def test_cli_grow_hours_records_the_growth_per_stack(tmp_path):
    out = tmp_path / "grown"
    rc = main(["simulate", str(out), "--stacks", "2", "--slices", "5", "--size", "48",
               "--cells", "5", "--grow-hours", "2,3", "--source-points", "4", "--quiet"])
    assert rc == 0
    for a in read_dataset(out).annotations:
        assert 2.0 <= float(a.extra["grow_hours"]) <= 3.0
    # Refused while parsing: exit code 2 (main returns it), one line naming the flag.
    assert main(["simulate", str(tmp_path / "bad"), "--grow-hours", "3,1", "--quiet"]) == 2
    assert not (tmp_path / "bad").exists()


def test_cli_user_errors_exit_2(tmp_path, capsys):
    (tmp_path / "annotations.csv").write_text("stack,focus_index,z_step_um,pixel_size_um\n")
    assert main(["simulate", str(tmp_path), "--stacks", "1", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "x"), "--stacks", "0", "--quiet"]) == 2
    assert main(["simulate", str(tmp_path / "y"), "--condenser-na", "1.5", "--quiet"]) == 2
