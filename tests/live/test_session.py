"""Headless simulated sessions with an oracle predictor (tiny frames, fast clock)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller import ControllerSettings
from napari_zfocus.live.drift import DriftSettings
from napari_zfocus.live.headless import demo_model_path, run_simulated_session
from napari_zfocus.live.scenes import PatternRenderer
from napari_zfocus.live.simulated_microscope import SimulatedMicroscopeSettings

SHAPE = (32, 32)


def run(**kwargs):
    kwargs.setdefault("oracle_noise_um", 0.2)
    kwargs.setdefault("renderer", PatternRenderer(SHAPE, n_cells=5, max_cells=20))
    kwargs.setdefault("microscope_settings", SimulatedMicroscopeSettings(shape=SHAPE))
    return run_simulated_session(**kwargs)


def test_oracle_keeps_focus_through_paper_drift():
    # 24 h of the paper's drift (40 um, 3 C) compressed into 2 simulated hours.
    result = run(hours=2.0, drift_um=40.0, frame_interval_s=5.0, seed=3)
    assert result.frames == 1440
    assert result.within_1um >= 0.99
    assert result.max_step_um <= result.controller.settings.max_step_um + 1e-9
    lo, hi = result.z_limits_um
    assert lo <= result.stage_range_um[0] and result.stage_range_um[1] <= hi
    assert result.stage_range_um[1] - result.stage_range_um[0] > 30  # it really followed
    assert result.moves > 10 and not result.stopped
    d = result.to_dict()
    for key in ("frames", "within_1um", "max_abs_error_um", "max_step_um", "moves", "holds",
                "stage_range_um", "wall_s", "fps"):
        assert key in d


def test_without_control_the_sample_drifts_away():
    # Same drift, a controller that never moves (huge dead band): focus is lost.
    result = run(hours=1.0, drift_um=20.0, controller_settings=ControllerSettings(dead_band_um=1e6))
    assert result.moves == 0
    assert result.within_1um < 0.5 and result.max_abs_error_um > 10


class BimodalAfter:
    """A model that turns ambiguous (cells on floor and ceiling) after n frames."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def predict(self, image, pixel_size_um):
        from types import SimpleNamespace

        self.calls += 1
        bad = self.calls > self.n
        return SimpleNamespace(z_um=8.0 if bad else 0.0, confidence=0.9, bimodal=bad)


def test_bimodal_model_never_moves_and_says_why():
    result = run(predictor=BimodalAfter(5), oracle_noise_um=None, hours=0.1, drift_um=0.0,
                 drift_settings=DriftSettings(total_drift_um=0, wander_um=0, jump_rate_per_h=0))
    assert result.moves == 0
    assert result.holds["bimodal"] >= result.frames - 5


def test_progress_and_cancel():
    seen = []

    def progress(done, total, decision):
        seen.append(done)

    result = run(hours=0.5, frame_interval_s=5.0, progress=progress, cancel=lambda: len(seen) >= 3)
    assert result.cancelled and 0 < result.frames < 360
    assert seen == sorted(seen)


def test_bad_arguments():
    with pytest.raises(ZFocusError, match="hours"):
        run(hours=0)
    with pytest.raises(ZFocusError, match="interval"):
        run(frame_interval_s=-1)


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ZFocusError, match="not found"):
        run_simulated_session(tmp_path / "nope.zfm", hours=0.01)


def test_demo_model_path_error_names_the_file(monkeypatch, tmp_path):
    import napari_zfocus.live.headless as session

    monkeypatch.setattr(session, "DEMO_MODEL", tmp_path / "demo_model.zfm")
    with pytest.raises(ZFocusError, match="demo_model.zfm.*--model"):
        demo_model_path()


def test_csv_decision_log(tmp_path):
    result = run(hours=0.05)
    out = result.controller.export_csv(tmp_path / "d.csv")
    lines = out.read_text().splitlines()
    assert len(lines) == result.frames + 2  # header + lock + one per frame
    assert np.isfinite(float(lines[-1].split(",")[-2]))  # true defocus recorded
