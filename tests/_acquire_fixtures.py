"""Shared fixtures of the ``zfocus acquire`` tests: a truthful model and a simulated core
that ``--mm-config`` loads (import the fixtures into a test module by name)."""

from __future__ import annotations

import pytest

from napari_zfocus.acquisition.simulated_scope import SimulatedScope, SimulatedScopeSettings

FAST = ["--scene", "pattern", "--size", "48", "--positions", "2", "--hours", "0.5",
        "--drift-um", "2"]


class ScopeTruth:
    """A perfect model for the simulated plate: reads the camera's true defocus."""

    def __init__(self, confidence=0.9):
        self.confidence = confidence

    def predict(self, image, pixel_size_um):
        snap = ScopeTruth.scope.last_snap
        z = snap.true_defocus_um
        return type("P", (), {"z_um": z, "z_argmax_um": z, "confidence": self.confidence,
                              "bimodal": False})()


@pytest.fixture(name="truth_model")
def truth_model_fixture(monkeypatch):
    """Replace the model by the truth and remember the scope the command builds."""
    import napari_zfocus.acquisition.simulated_run as simulated_run
    import napari_zfocus.cli.acquire as acquire

    made = []

    class Recording(SimulatedScope):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)
            ScopeTruth.scope = self

    monkeypatch.setattr(simulated_run, "SimulatedScope", Recording)
    monkeypatch.setattr(acquire, "_predictor", lambda args, px: ScopeTruth())
    return made


@pytest.fixture(name="hardware")
def hardware_fixture(monkeypatch, tmp_path):
    """`--mm-config` loads the simulated plate's core; the model reads the truth."""
    import napari_zfocus.cli.acquire as acquire
    import napari_zfocus.live.mmcore as mmcore

    scope = SimulatedScope(SimulatedScopeSettings(positions=2, renderer="pattern",
                                                  shape=(48, 48), drift_um=0.0))
    ScopeTruth.scope = scope
    monkeypatch.setattr(mmcore, "load_mmcore", lambda cfg: scope.core)
    monkeypatch.setattr(acquire, "_predictor", lambda args, px: ScopeTruth())
    cfg = tmp_path / "scope.cfg"
    cfg.write_text("# simulated\n")
    import useq

    seq = useq.MDASequence(
        stage_positions=scope.position_list(), channels=[{"config": "FL", "group": "Channel"}],
        time_plan={"interval": 0, "loops": 2}, z_plan={"range": 2, "step": 1},
    )
    seq_file = tmp_path / "seq.yaml"
    seq_file.write_text(seq.yaml())
    yield scope, cfg, seq_file
    scope.close()
