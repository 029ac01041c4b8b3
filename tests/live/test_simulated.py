"""SimulatedMicroscope, clocks, drift and the pattern renderer (tiny frames, fast)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.drift import DriftSettings, ThermalDrift
from napari_zfocus.live.microscope import Microscope, StageError, stream_frames
from napari_zfocus.live.scenes import PatternRenderer
from napari_zfocus.live.simulated_microscope import (
    OraclePredictor,
    ScaledClock,
    SimClock,
    SimulatedMicroscope,
    SimulatedMicroscopeSettings,
)

SHAPE = (48, 48)


def scope(**kwargs) -> SimulatedMicroscope:
    drift = kwargs.pop("drift", ThermalDrift(DriftSettings(total_drift_um=10.0, duration_s=3600)))
    settings = SimulatedMicroscopeSettings(shape=SHAPE, **kwargs)
    return SimulatedMicroscope(settings, drift=drift, renderer=PatternRenderer(SHAPE, seed=1))


def test_is_a_microscope_and_frames_carry_truth():
    mic = scope()
    assert isinstance(mic, Microscope)
    f = mic.snap()
    assert f.image.shape == SHAPE and f.image.dtype == np.uint16
    assert f.metadata["true_defocus_um"] == pytest.approx(0.0)
    mic.move_z_by(-2.0)
    assert mic.snap().metadata["true_defocus_um"] == pytest.approx(2.0, abs=1e-3)


def test_defocus_changes_the_image():
    mic = scope()
    sharp = mic.image_at(0.0).astype(float)
    blurred = mic.image_at(15.0).astype(float)
    grad = lambda im: np.abs(np.diff(im, axis=1)).mean()  # noqa: E731
    assert not np.array_equal(sharp, blurred)
    # Same defocus, fresh noise: frames differ but are close.
    again = mic.image_at(0.0).astype(float)
    assert 0 < np.abs(again - sharp).mean() < np.abs(blurred - sharp).mean() + grad(sharp)


def test_interpolates_between_planes_and_renders_lazily():
    mic = scope(plane_step_um=0.5, render_block=2)
    a, b, w = mic._plane_pair(0.25)
    assert float(w) == pytest.approx(0.5)
    n = mic.n_renders
    mic._plane_pair(0.3)
    assert mic.n_renders == n  # cached
    mic._plane_pair(20.0)
    assert mic.n_renders == n + 1  # a new block far away


def test_scene_rerenders_on_schedule():
    mic = scope(rerender_every_s=60.0)
    mic.snap()
    n = mic.n_renders
    mic.clock.advance(30)
    mic.snap()
    assert mic.n_renders == n
    mic.clock.advance(60)
    mic.snap()
    assert mic.n_renders == n + 1


def test_background_render_swaps_in_new_scene():
    mic = scope(rerender_every_s=10.0, background_render=True)
    mic.snap()
    mic.clock.advance(20)
    mic.snap()  # served from the old planes while the thread renders
    mic.close()  # joins the render thread
    assert not any(t.name == "zfocus-sim-render" for t in threading.enumerate())
    assert mic._epoch_s == pytest.approx(20.0, abs=0.1)


def test_stage_limits_busy_and_close():
    mic = scope(z_limits_um=(-5.0, 5.0), stage_speed_um_s=10.0, stage_settle_s=0.1)
    with pytest.raises(StageError, match="outside the limits"):
        mic.move_z_to(6.0)
    with pytest.raises(StageError, match="finite"):
        mic.move_z_to(float("nan"))
    mic.move_z_to(4.0)
    assert mic.is_busy()
    mic.wait(0.6)
    assert not mic.is_busy() and mic.get_z() == 4.0
    mic.close()
    with pytest.raises(StageError, match="closed"):
        mic.snap()


def test_sample_drifts_with_time():
    mic = scope()
    mic.clock.advance(3600)
    assert mic.snap().metadata["true_defocus_um"] == pytest.approx(mic.sample_z_um(3600), abs=0.01)
    assert abs(mic.sample_z_um(3600)) > 5.0


def test_stream_frames_uses_stream_and_advances_clock():
    mic = scope(exposure_s=0.05)
    frames = list(stream_frames(mic, 4))
    assert [f.timestamp_s for f in frames] == pytest.approx([0.0, 0.05, 0.1, 0.15])


def test_oracle_predicts_truth():
    mic = scope()
    mic.move_z_to(-3.0)
    oracle = OraclePredictor(mic, noise_um=0.0, bias_um=0.5)
    f = mic.snap()
    assert oracle.predict(f.image, mic.pixel_size_um).z_um == pytest.approx(3.5)


def test_clocks():
    c = SimClock()
    c.sleep(2.5)
    assert c.now() == 2.5
    with pytest.raises(ValueError):
        c.advance(-1)
    fast = ScaledClock(1000.0)
    fast.sleep(1.0)  # 1 ms of real time
    assert fast.now() >= 1.0
    with pytest.raises(ZFocusError):
        ScaledClock(0)


def test_bad_settings():
    with pytest.raises(ZFocusError, match="limits"):
        SimulatedMicroscopeSettings(z_limits_um=(5, -5)).validate()
    with pytest.raises(ZFocusError, match="plane step"):
        SimulatedMicroscopeSettings(plane_step_um=0).validate()


def test_drift_model_matches_paper_scale():
    d = ThermalDrift(DriftSettings(), seed=2)
    t = np.linspace(0, 24 * 3600, 24 * 60 + 1)
    z = d.sample_z_um(t)
    assert z[0] == pytest.approx(0.0)
    assert 30 < z[-1] < 50  # ~40 um net over 24 h
    jumps = np.abs(np.diff(z))
    assert jumps.max() <= 2.0 + 0.1  # sudden jumps <= 2 um (+ drift in one minute)
    assert d.sample_z_um(1234.0) == pytest.approx(d.sample_z_um(1234.0))  # deterministic
    again = ThermalDrift(DriftSettings(), seed=2)
    assert again.sample_z_um(50_000.0) == pytest.approx(d.sample_z_um(50_000.0))


def test_drift_jump_sizes_and_bad_settings():
    d = ThermalDrift(DriftSettings(jump_rate_per_h=20, wander_um=0, total_drift_um=0), seed=0)
    times = d.jump_times_s(3600)
    assert len(times) > 5
    steps = np.diff(d.jumps_um(np.concatenate(([0.0], times))))
    assert np.all((np.abs(steps) >= 0.5) & (np.abs(steps) <= 2.0))
    with pytest.raises(ZFocusError):
        ThermalDrift(DriftSettings(jump_min_um=3, jump_max_um=1))


def test_drift_sampled_frame_by_frame_equals_sampled_at_once():
    # Jumps are drawn lazily as time goes on; extending them must not change the past.
    t = np.arange(0, 6 * 3600, 60.0)
    step_by_step = ThermalDrift(DriftSettings(jump_rate_per_h=5), seed=4)
    incremental = np.array([step_by_step.sample_z_um(ti) for ti in t])
    at_once = ThermalDrift(DriftSettings(jump_rate_per_h=5), seed=4).sample_z_um(t)
    assert np.allclose(incremental, at_once)
    assert np.abs(incremental).max() < 60
