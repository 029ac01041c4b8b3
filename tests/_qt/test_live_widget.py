"""Live autofocus dock: live view in one layer, lock, autofocus moves the stage, teardown."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _live_fakes import TruthPredictor
from qtpy.QtCore import QThreadPool

from napari_zfocus._qt._viewer import text_overlay
from napari_zfocus._qt.live_widget import LAYER_NAME, LiveAutofocusWidget
from napari_zfocus.live.scenes import PatternRenderer
from napari_zfocus.live.simulated_microscope import (
    SimClock,
    SimulatedMicroscope,
    SimulatedMicroscopeSettings,
)
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.io import save_model
from napari_zfocus.model.network import build_network


@pytest.fixture
def scope() -> SimulatedMicroscope:
    """Small, fast simulated microscope; the stage starts 5 um below the sample's focus."""
    s = SimulatedMicroscopeSettings(
        shape=(64, 64), start_z_um=0.0, plane_range_um=10.0, plane_step_um=0.5
    )
    m = SimulatedMicroscope(s, renderer=PatternRenderer((64, 64), n_cells=6), clock=SimClock())
    m.move_z_to(-5.0)
    yield m
    m.close()


@pytest.fixture
def tiny_model(tmp_path):
    config = ModelConfig(field_um=12, pixel_size_um=0.24, conv_features=(4, 8), fc_features=32)
    return save_model(tmp_path / "tiny.zfm", build_network(config), config, {"note": "test"})


def _no_workers(widget: LiveAutofocusWidget) -> bool:
    return widget.worker is None and QThreadPool.globalInstance().activeThreadCount() == 0


def test_live_view_with_model_file_updates_one_layer(make_napari_viewer, qtbot, scope, tiny_model):
    viewer = make_napari_viewer()
    widget = LiveAutofocusWidget(viewer, microscope=scope, model_path=tiny_model, max_fps=200)
    viewer.window.add_dock_widget(widget)
    assert "tiny.zfm" in widget.model_label.text()
    widget.start_button.click()
    assert widget.is_live and widget.start_button.text() == "Stop live"
    qtbot.waitUntil(lambda: widget.loop is not None and widget.loop.frames >= 10, timeout=30000)
    qtbot.waitUntil(
        lambda: widget.last_output is not None and widget.last_stats is not None, timeout=30000
    )
    # One layer, updated in place, same shape as the camera frames.
    live_layers = [layer for layer in viewer.layers if layer.name.startswith(LAYER_NAME)]
    assert len(live_layers) == 1
    assert live_layers[0].data.shape == (64, 64)
    assert tuple(live_layers[0].scale) == pytest.approx((0.24, 0.24))
    # The random tiny model still produces a softmax over its 41 bins: the bar shows it.
    assert widget.softmax.heights.shape == (41,)
    assert widget.softmax.heights.sum() == pytest.approx(1.0, abs=1e-6)
    assert text_overlay(viewer).visible and "conf" in text_overlay(viewer).text
    assert widget.last_stats.fps > 0
    widget.start_button.click()  # stop
    assert not widget.is_live
    qtbot.waitUntil(lambda: _no_workers(widget), timeout=30000)
    assert not widget.loop.running


def test_lock_and_autofocus_move_stage_to_sample(make_napari_viewer, qtbot, scope):
    viewer = make_napari_viewer()
    widget = LiveAutofocusWidget(viewer, microscope=scope, max_fps=200)
    viewer.window.add_dock_widget(widget)
    widget.set_predictor(TruthPredictor(scope), "perfect model")
    assert widget.start_button.isEnabled()
    widget.start_live()
    qtbot.waitUntil(lambda: widget.last_output is not None, timeout=30000)
    # Autofocus off: estimate shown, stage untouched.
    assert widget.last_output.estimate_um == pytest.approx(5.0, abs=0.1)
    assert scope.get_z() == -5.0
    widget.lock_button.click()  # lock on the current estimate...
    qtbot.waitUntil(lambda: not math.isnan(widget.last_output.locked_um), timeout=30000)
    widget.lock_button.click()  # ...then unlock and lock on "in focus" explicitly
    widget._submit(lambda live: live.lock(0.0))
    widget.autofocus_box.setChecked(True)
    qtbot.waitUntil(lambda: abs(scope.true_defocus_um()) <= 0.6, timeout=30000)
    assert scope.get_z() > -1.0  # moved up by ~5 um
    counts = widget.live.controller.counts
    assert counts["moved"] + counts["moved_clamped"] >= 2
    # A max step of 3 um means at least two moves for 5 um.
    assert widget.live.controller.max_abs_move_um <= 3.0 + 1e-9
    widget.trace.refresh()
    assert len(widget.trace) > 0
    widget.stop_live()
    qtbot.waitUntil(lambda: _no_workers(widget), timeout=30000)


def test_settings_validation_and_decision_log(
    make_napari_viewer, qtbot, scope, tmp_path, monkeypatch
):
    errors: list[str] = []
    monkeypatch.setattr("napari_zfocus._qt.live_widget.show_error", errors.append)
    viewer = make_napari_viewer()
    widget = LiveAutofocusWidget(viewer, microscope=scope, max_fps=200)
    widget.set_predictor(TruthPredictor(scope))
    widget.start_live()
    qtbot.waitUntil(lambda: widget.loop is not None and widget.loop.frames > 3, timeout=30000)
    widget.z_max.setValue(-300.0)  # below z min: refused, old settings kept
    assert errors and "z limits" in errors[-1]
    widget.z_max.setValue(100.0)
    widget.dead_band.setValue(1.5)
    qtbot.waitUntil(lambda: widget.live.controller.settings.dead_band_um == 1.5, timeout=30000)
    widget.autofocus_box.setChecked(True)
    qtbot.waitUntil(lambda: len(widget.live.controller.decisions) > 3, timeout=30000)
    widget.stop_live()
    qtbot.waitUntil(lambda: not widget.loop.running, timeout=30000)  # stop does not wait
    out = tmp_path / "log.csv"
    widget.save_decision_log(out)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("index,") and len(lines) > 3


def test_start_without_model_shows_error(make_napari_viewer, qtbot, monkeypatch, scope,
                                         tmp_path):
    errors: list[str] = []
    monkeypatch.setattr("napari_zfocus._qt.live_widget.show_error", errors.append)
    monkeypatch.setattr("napari_zfocus._qt.live_widget.DEMO_MODEL", tmp_path / "absent.zfm")
    viewer = make_napari_viewer()
    widget = LiveAutofocusWidget(viewer, microscope=scope)
    assert not widget.start_button.isEnabled()
    widget.start_live()
    assert errors and "model" in errors[-1].lower() and not widget.is_live
    bad = tmp_path / "bad.zfm"
    bad.write_bytes(b"\x80\x04 not a model")
    widget.load_model(bad)  # in a worker: the GUI thread never loads a model
    qtbot.waitUntil(lambda: not widget.model_loading, timeout=30000)
    assert widget.predictor is None  # not loaded
    assert "bad.zfm" in errors[-1]


def test_closing_viewer_while_live_stops_threads(make_napari_viewer, qtbot, scope):
    viewer = make_napari_viewer()
    widget = LiveAutofocusWidget(viewer, microscope=scope, max_fps=200)
    viewer.window.add_dock_widget(widget)
    widget.set_predictor(TruthPredictor(scope))
    widget.start_live()
    loop = widget.loop
    qtbot.waitUntil(lambda: loop.frames > 5, timeout=30000)
    viewer.close()
    qtbot.waitUntil(lambda: not loop.running, timeout=30000)
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=30000)


def test_live_over_pymmcore_core(make_napari_viewer, qtbot, scope):
    """A CMMCorePlus (here a UniMMCore with Python devices) is wrapped and streamed."""
    pytest.importorskip("pymmcore_plus")
    from napari_zfocus.live.mmcore import MMCoreMicroscope, make_simulated_mmcore

    core = make_simulated_mmcore(scope, exposure_ms=2.0)
    try:
        viewer = make_napari_viewer()
        widget = LiveAutofocusWidget(viewer, microscope=core)
        assert isinstance(widget.microscope, MMCoreMicroscope)
        widget.set_predictor(TruthPredictor(scope))
        widget.start_live()
        qtbot.waitUntil(
            lambda: widget.last_output is not None and widget.loop.frames > 5, timeout=30000
        )
        assert core.isSequenceRunning()
        widget.stop_live()
        # Stopping releases the camera (polled: on a busy machine the loop thread may need
        # longer than stop_live's own 5 s wait).
        running = core.isSequenceRunning  # bound now: the finally clause deletes `core`
        qtbot.waitUntil(lambda: not running(), timeout=30000)
        qtbot.waitUntil(lambda: _no_workers(widget), timeout=30000)
    finally:
        core.unloadAllDevices()
        del core


def test_live_plots_paint_their_data(qtbot) -> None:
    """The QPainter plots draw bars where the probability is and a line per series."""
    from qtpy.QtGui import QColor

    from napari_zfocus._qt._canvas import ACCENT, BACKGROUND
    from napari_zfocus._qt._live_plots import SoftmaxStrip, TraceView, nice_ticks

    strip = SoftmaxStrip(90)
    qtbot.addWidget(strip)
    strip.resize(300, 90)
    centres = np.arange(-20.0, 21.0)
    probs = np.zeros(41)
    probs[30] = 1.0  # all mass at +10 um
    strip.set(probs, centres, 10.0)
    image = strip.grab().toImage()
    rect = strip.plot_rect()
    (x_peak,), (y_mid,) = strip.to_px(np.array([10.0]), np.array([0.35]), rect)
    (x_empty,), _ = strip.to_px(np.array([-7.0]), np.array([0.5]), rect)  # off the grid
    assert image.pixelColor(int(x_peak) + 2, int(y_mid)) == QColor(ACCENT)
    assert image.pixelColor(int(x_empty), int(y_mid)) == QColor(BACKGROUND)

    trace = TraceView(("a", "b"), max_points=5)
    qtbot.addWidget(trace)
    for t in range(8):
        trace.append(t, t * 1.0, np.nan if t == 3 else -t)
    assert len(trace) == 5  # bounded history
    trace.refresh()
    assert trace.x_range == (3.0, 7.0)
    assert trace.y_range[0] < -7.0 and trace.y_range[1] > 7.0
    trace.resize(300, 170)
    trace.grab()  # paints NaN gaps without error
    assert trace.n_paints >= 1
    assert list(nice_ticks(0.0, 10.0, 5)) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert list(nice_ticks(-0.3, 0.3, 3)) == pytest.approx([-0.2, 0.0, 0.2])


def test_shutdown_returns_at_once_and_closes_its_microscope_after_the_loop(
    make_napari_viewer, qtbot, scope
):
    import threading
    import time

    closed_in: list[str] = []
    close = scope.close
    scope.close = lambda: (closed_in.append(threading.current_thread().name), close())
    viewer = make_napari_viewer()
    widget = LiveAutofocusWidget(viewer, max_fps=200)
    viewer.window.add_dock_widget(widget)
    widget.set_microscope(scope, owned=True)  # as if the dock had made it
    widget.set_predictor(TruthPredictor(scope))
    widget.start_live()
    loop = widget.loop
    qtbot.waitUntil(lambda: loop.frames > 3, timeout=30000)
    t0 = time.perf_counter()
    widget.shutdown()
    assert time.perf_counter() - t0 < 1.0  # never waits on the GUI thread
    assert widget.closed
    qtbot.waitUntil(lambda: not loop.running and bool(closed_in), timeout=30000)
    assert closed_in[0] != threading.current_thread().name  # closed by the loop, after it
    widget.shutdown()  # idempotent
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=30000)
    assert len(closed_in) == 1
