"""``zfocus suggest``: human line, --json contract, user errors exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_zfocus.cli import main
from napari_zfocus.data import write_stack


def _dip_stack(path: Path) -> None:
    rng = np.random.default_rng(3)
    z = np.arange(15)
    amplitude = 0.3 + np.exp(-((z - 5) ** 2) / 2.0) + np.exp(-((z - 9) ** 2) / 2.0)
    texture = rng.standard_normal((40, 40))
    data = 2000 + amplitude[:, None, None] * 300 * texture
    write_stack(path, data.astype(np.uint16), z_step_um=0.5, pixel_size_um=0.2)


def test_json_output(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.tif"
    _dip_stack(path)
    assert main(["suggest", str(path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["focus_index"] == 7
    assert record["n_slices"] == 15
    assert record["z_step_um"] == 0.5
    assert record["method"] == "contrast-dip"
    assert 0 < record["confidence"] <= 1
    assert "runner_up_index" in record


def test_overrides_and_text_output(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.tif"
    _dip_stack(path)
    assert main(["suggest", str(path), "--z-step", "2", "--pixel-size", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "in-focus slice 7 of 15" in out and "z-step 2 um" in out


def test_bad_file_exits_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.tif"
    path.write_text("not a tiff")
    assert main(["suggest", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zfocus suggest: error: ") and "bad.tif" in err
    assert len(err.splitlines()) == 1


def test_multi_position_file_needs_series(tmp_path: Path, capsys) -> None:
    path = tmp_path / "positions.tif"
    _dip_stack(tmp_path / "one.tif")
    import tifffile

    data = tifffile.imread(tmp_path / "one.tif")
    with tifffile.TiffWriter(path) as tif:
        tif.write(data[::-1], metadata={"axes": "ZYX"})  # focus at 14 - 7 = 7 too
        tif.write(np.roll(data, 3, axis=0), metadata={"axes": "ZYX"})  # focus moved to 10
    assert main(["suggest", str(path)]) == 2
    err = capsys.readouterr().err
    assert "positions.tif" in err and "series" in err
    assert main(["suggest", str(path), "--series", "1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["focus_index"] == 10
