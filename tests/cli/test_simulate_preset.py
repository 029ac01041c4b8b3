"""``zfocus simulate --preset``: named starting settings that explicit flags override."""

from __future__ import annotations

import pytest

from napari_zfocus.cli import build_parser, main
from napari_zfocus.cli.simulate import preset_params
from napari_zfocus.data import read_dataset
from napari_zfocus.simulation import SimulationParams

TINY = ["--size", "32", "--slices", "3", "--quiet"]


def _args(*flags: str):
    return build_parser(["simulate"]).parse_args(["simulate", "out", *flags])


def test_broad_preset_writes_a_dataset_recording_its_knobs(tmp_path):
    out = tmp_path / "broad"
    # Few cells and short growth keep the run short; the rest is the preset's.
    assert main(["simulate", str(out), "--preset", "broad", "--stacks", "2",
                 "--cells", "5,20", "--grow-hours", "0,1", *TINY]) == 0
    ds = read_dataset(out)
    assert len(ds.annotations) == 2
    for a in ds.annotations:
        assert {"rod_fraction", "debris_per_100um2", "chamber_height_um", "cell_dn",
                "pillars"} <= set(a.extra)
        assert 0.2 <= float(a.extra["condenser_na"]) <= 0.6
        assert 4.0 <= float(a.extra["chamber_height_um"]) <= 12.0
        assert ds.open_stack(a).data.shape == (3, 32, 32)


def test_default_preset_is_what_no_preset_gives(tmp_path):
    for name, extra in (("plain", []), ("named", ["--preset", "default"])):
        assert main(["simulate", str(tmp_path / name), "--stacks", "1", *TINY, *extra]) == 0
    plain, named = tmp_path / "plain", tmp_path / "named"
    assert (plain / "stack_000.tif").read_bytes() == (named / "stack_000.tif").read_bytes()
    assert (plain / "annotations.csv").read_text() == (named / "annotations.csv").read_text()
    assert preset_params(_args()) == SimulationParams(shape=(320, 320))


def test_explicit_flags_override_the_preset():
    params = preset_params(_args("--preset", "broad", "--condenser-na", "0.25",
                                 "--rod-fraction", "0.3", "--source-points", "4"))
    broad = SimulationParams.broad()
    assert params.condenser_na == 0.25 and params.rod_fraction == 0.3
    assert params.photons == broad.photons and params.chamber_height_um == (4.0, 12.0)
    # Asked for rods: every stack gets them; the other features keep their share.
    assert "rods" not in params.feature_probability
    assert params.feature_probability["debris"] == broad.feature_probability["debris"]
    assert (params.optics.n_source_points, params.optics.source_density) == (4, 0.0)
    assert preset_params(_args("--preset", "broad")).optics.source_density > 0
    # A typed value overrides the preset even where it is the flag's default.
    typed = preset_params(_args("--preset", "broad", "--condenser-na", "0.3,0.45"))
    assert typed.condenser_na == (0.3, 0.45)
    assert preset_params(_args("--preset", "broad")).condenser_na == broad.condenser_na


def test_unknown_preset_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["simulate", str(out), "--preset", "wide", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--preset" in err and "'default', 'broad'" in err and "'wide'" in err
    assert not out.exists()


@pytest.mark.parametrize("flags", [["--rod-fraction", "1.5"], ["--debris", "-1"],
                                   ["--debris", "2,1"]])
def test_bad_feature_flags_exit_2(tmp_path, flags, capsys):
    assert main(["simulate", str(tmp_path / "y"), *flags, *TINY]) == 2
    assert flags[0] in capsys.readouterr().err
