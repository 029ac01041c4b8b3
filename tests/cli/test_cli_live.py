"""``zfocus live`` and ``zfocus demo --headless``: flags, JSON keys, CSV, errors."""

from __future__ import annotations

import csv
import json

import pytest

from napari_zfocus.cli import main

REQUIRED_KEYS = {"frames", "within_1um", "max_abs_error_um", "max_step_um", "moves", "holds",
                 "stage_range_um", "wall_s", "fps"}
FAST = ["--oracle-noise", "0.2", "--scene", "pattern", "--size", "32"]


def last_json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_live_simulate_oracle_json_and_csv(tmp_path, capsys):
    log = tmp_path / "decisions.csv"
    rc = main(["live", "--simulate", *FAST, "--hours", "0.5", "--drift-um", "20", "--json",
               "--csv", str(log)])
    assert rc == 0
    d = last_json(capsys)
    assert set(d) >= REQUIRED_KEYS
    assert d["frames"] == 360 and d["within_1um"] >= 0.99
    assert d["max_step_um"] <= 3.0 and d["moves"] > 0
    rows = list(csv.DictReader(log.open()))
    assert len(rows) == 361 and rows[0]["reason"] == "locked"


@pytest.mark.parametrize("gain", [0.74, 1.21])
def test_a_model_with_the_wrong_gain_still_holds_focus(gain, capsys):
    """A model read at another condenser aperture misjudges distances by a factor (0.74 and
    1.21 measured) but not their sign: the loop still converges on focus, steps within the
    limit. A gain beyond 2 would make every correction overshoot more than the error."""
    rc = main(["live", "--simulate", *FAST, "--hours", "0.5", "--drift-um", "20",
               "--oracle-gain", str(gain), "--json"])
    assert rc == 0
    d = last_json(capsys)
    assert d["within_1um"] >= 0.99 and d["max_step_um"] <= 3.0


def test_live_controller_flags_reach_the_controller(capsys):
    rc = main(["live", "--simulate", *FAST, "--hours", "0.2", "--drift-um", "20",
               "--max-step", "0.25", "--dead-band", "0.1", "--json"])
    assert rc == 0
    d = last_json(capsys)
    assert d["max_step_um"] <= 0.25 + 1e-9 and d["max_step_limit_um"] == 0.25


def test_live_with_a_tiny_real_model(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    io = pytest.importorskip("napari_zfocus.model.io")
    pytest.importorskip("napari_zfocus.model.inference")
    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.model.network import build_network

    torch.manual_seed(0)
    config = ModelConfig(field_um=7.68, conv_features=(2, 4), kernel_size=3, pool_size=2,
                         fc_features=8, z_min_um=-4, z_max_um=4)
    path = io.save_model(tmp_path / "tiny.zfm", build_network(config).eval(), config)
    rc = main(["live", "--simulate", "--model", str(path), "--hours", "0.01", "--size", "40",
               "--min-confidence", "0", "--json"])
    assert rc == 0
    d = last_json(capsys)
    assert set(d) >= REQUIRED_KEYS and d["frames"] == 7


def test_live_errors_exit_2_with_one_line(tmp_path, capsys, monkeypatch):
    import napari_zfocus.live.headless as session

    monkeypatch.setattr(session, "DEMO_MODEL", tmp_path / "demo_model.zfm")
    assert main(["live", "--simulate", "--hours", "0.01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "demo_model.zfm" in err[-1] and "--model" in err[-1]
    assert main(["live"]) == 2
    assert "--simulate" in capsys.readouterr().err
    assert main(["live", "--simulate", "--model", str(tmp_path / "x.zfm")]) == 2
    assert "x.zfm: model file not found" in capsys.readouterr().err
    assert main(["live", "--simulate", *FAST, "--gain", "2"]) == 2
    assert "gain" in capsys.readouterr().err
    assert main(["live", "--mm-config", str(tmp_path / "none.cfg")]) == 2
    assert "none.cfg" in capsys.readouterr().err


def test_demo_headless_prints_what_happened(capsys, monkeypatch):
    import napari_zfocus.live.headless as session
    from napari_zfocus.live.scenes import PatternRenderer

    real = session.SimulatedMicroscope

    def small(settings=None, **kw):  # tiny frames and a fast scene keep the test quick
        from napari_zfocus.live.simulated_microscope import SimulatedMicroscopeSettings

        kw["renderer"] = PatternRenderer((32, 32))
        return real(SimulatedMicroscopeSettings(shape=(32, 32)), **kw)

    monkeypatch.setattr(session, "SimulatedMicroscope", small)
    rc = main(["demo", "--headless", "--oracle-noise", "0.2", "--minutes", "10"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "frames: 300" in out and "within +/-1 um" in out and "moves:" in out


def test_live_and_demo_import_no_gui_torch_or_pymmcore():
    import subprocess
    import sys

    code = (
        "import sys, napari_zfocus.cli.live, napari_zfocus.cli.demo, napari_zfocus.live;"
        "print(sorted(m for m in ('napari', 'torch', 'qtpy', 'pymmcore_plus') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _fake_hardware(monkeypatch, tmp_path, *, camera_dies: bool = False):
    """``--mm-config`` on the simulated microscope: the core loader, adapter and model are
    replaced, so the hardware command's own loop runs without Micro-Manager."""
    import napari_zfocus.live.headless as session
    import napari_zfocus.live.mmcore as mmcore
    from napari_zfocus.live.scenes import PatternRenderer
    from napari_zfocus.live.simulated_microscope import (
        OraclePredictor,
        SimulatedMicroscope,
        SimulatedMicroscopeSettings,
    )

    class Scope(SimulatedMicroscope):
        snaps = 0

        def snap(self):
            Scope.snaps += 1
            if camera_dies and Scope.snaps > 3:  # after the lock frames
                raise RuntimeError("camera unplugged")
            return super().snap()

    scope = Scope(SimulatedMicroscopeSettings(shape=(32, 32)),
                  renderer=PatternRenderer((32, 32)))
    monkeypatch.setattr(mmcore, "load_mmcore", lambda cfg: object())
    monkeypatch.setattr(mmcore, "MMCoreMicroscope", lambda core: scope)
    monkeypatch.setattr(session, "load_predictor", lambda model: OraclePredictor(scope, 0.2))
    cfg = tmp_path / "scope.cfg"
    cfg.write_text("# a Micro-Manager configuration\n")
    return cfg


def test_live_hardware_steps_prints_each_frame_and_stops_at_frames(tmp_path, capsys,
                                                                   monkeypatch):
    cfg = _fake_hardware(monkeypatch, tmp_path)
    rc = main(["live", "--mm-config", str(cfg), "--frames", "4", "--interval-s", "0.01",
               "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out.strip().splitlines()[-1])
    assert d["frames"] == 4 and not d["stopped"]
    err = captured.err.strip().splitlines()
    assert "locked at estimate" in err[0]
    assert len([line for line in err if " s: stage " in line]) == 4


def test_live_hardware_camera_failure_is_a_safe_stop_not_a_crash(tmp_path, capsys,
                                                                 monkeypatch):
    cfg = _fake_hardware(monkeypatch, tmp_path, camera_dies=True)
    rc = main(["live", "--mm-config", str(cfg), "--interval-s", "0.01", "--json"])
    assert rc == 1  # the safe stop ends the session: no --frames needed
    captured = capsys.readouterr()
    d = json.loads(captured.out.strip().splitlines()[-1])
    assert d["stopped"] and "camera" in d["stop_reason"]
    assert d["frames"] == 5  # the default max_failures, in a row
    assert "Traceback" not in captured.err
