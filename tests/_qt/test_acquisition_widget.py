"""Acquisition dock: install/remove, the refocus trace, closing during and after a run, a bad
model file, and the dock beside pymmcore-widgets' (napari-micromanager's) MDA widget."""

from __future__ import annotations

import gc
import math
import threading
from dataclasses import dataclass

import pytest

pytest.importorskip("pymmcore_plus")
useq = pytest.importorskip("useq")

from qtpy.QtCore import QThreadPool

from _tiny import write_untrained_model
from napari_zfocus._qt import _acquisition_core
from napari_zfocus._qt.acquisition_widget import AcquisitionAutofocusWidget
from napari_zfocus.acquisition.engine import ZFocusEngine
from napari_zfocus.acquisition.settings import CORRECTED, LOCKED, FocusRecord
from napari_zfocus.acquisition.simulated_scope import SimulatedScope, SimulatedScopeSettings
from napari_zfocus.errors import ZFocusError

WAIT_MS = 30_000  # generous: the machine is shared; waits end as soon as the state is reached


def small_plate() -> SimulatedScopeSettings:
    return SimulatedScopeSettings(renderer="pattern", shape=(64, 64), positions=2)


@dataclass
class Prediction:
    z_um: float
    z_argmax_um: float
    confidence: float = 0.9
    bimodal: bool = False
    entropy: float = math.nan


class PlateTruth:
    """A perfect model: the true defocus of the simulated plate's last frame."""

    def __init__(self, scope: SimulatedScope | None = None) -> None:
        self.scope = scope  # set later for the dock's own plate
        self.calls = 0

    def predict(self, image, pixel_size_um: float) -> Prediction:
        self.calls += 1
        snap = self.scope.last_snap
        z = float(snap.true_defocus_um) if snap and snap.true_defocus_um is not None else 0.0
        return Prediction(z, z)


@pytest.fixture
def scope():
    s = SimulatedScope(small_plate())
    yield s
    s.close()
    gc.collect()


@pytest.fixture
def errors(monkeypatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr("napari_zfocus._qt.acquisition_widget.show_error", seen.append)
    return seen


def python_threads() -> set[threading.Thread]:
    """Live Python threads (Qt pool threads show up as dummies and stay in the pool)."""
    return {t for t in threading.enumerate()
            if t.is_alive() and not isinstance(t, threading._DummyThread)}


def no_new_threads(before: set[threading.Thread]) -> bool:
    return not (python_threads() - before) and QThreadPool.globalInstance().activeThreadCount() == 0


def record(index: int, p: int, t: int, estimate: float) -> FocusRecord:
    nan = math.nan
    return FocusRecord(
        index=index, p=p, t=t, position=f"p{p}", time_s=60.0 * t,
        decision=LOCKED if t == 0 else CORRECTED, reason="", stage_z_um=0.0,
        estimate_um=estimate, confidence=0.8, feed_forward_um=nan, correction_um=estimate,
        focus_z_um=estimate, offset_um=0.0, focus_frames=1, max_move_um=abs(estimate),
        duration_ms=5.0, camera_ms=1.0, settle_ms=0.0,
    )


def docked(viewer, **kwargs) -> AcquisitionAutofocusWidget:
    widget = AcquisitionAutofocusWidget(viewer, **kwargs)
    viewer.window.add_dock_widget(widget)
    return widget


def test_install_and_remove_restore_the_engine(make_napari_viewer, qtbot, scope, errors,
                                               monkeypatch):
    core = scope.core
    before = core.mda.engine
    widget = docked(make_napari_viewer(), core=core, predictor=PlateTruth(scope))
    assert widget.group_combo.currentText() == "Channel"
    assert widget.preset_combo.currentText() == "BF"  # the bright-field preset by default
    assert widget.demo_button.isHidden()  # a core given to the dock: no simulated demo
    widget.install_button.click()
    assert widget.installed and isinstance(core.mda.engine, ZFocusEngine)
    settings = widget.autofocus.settings
    assert (settings.focus_group, settings.focus_preset, settings.method) == (
        "Channel", "BF", "zfocus")
    assert not widget.settings_box.isEnabled()  # settings change only while removed
    widget.remove_button.click()
    assert not widget.installed and core.mda.engine is before
    # An acquisition is running: install is refused with a notification, nothing changes.
    monkeypatch.setattr(core.mda, "is_running", lambda: True)
    widget.install_button.click()
    assert errors and "running" in errors[-1]
    assert core.mda.engine is before
    monkeypatch.undo()
    widget.close()
    assert core.mda.engine is before


def test_trace_fills_from_records_emitted_on_the_acquisition_thread(make_napari_viewer, qtbot,
                                                                    scope):
    widget = docked(make_napari_viewer(), core=scope.core, predictor=PlateTruth(scope))
    assert widget.install()
    gui_thread = threading.get_ident()
    touched_from: set[int] = set()
    original_add = widget.view.add

    def add(records):  # the view must only ever be fed on the GUI thread
        touched_from.add(threading.get_ident())
        return original_add(records)

    widget.view.add = add

    def acquisition():
        n = 0
        for t in range(3):
            for p in range(2):
                widget.autofocus.refocused.emit(record(n, p, t, 0.5 * t + p))
                n += 1

    thread = threading.Thread(target=acquisition)
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: len(widget.view.records) == 6, timeout=WAIT_MS)
    assert touched_from == {gui_thread}
    xs, ys = widget.view.estimate.series["p1"]
    assert xs == [0.0, 1.0, 2.0] and ys == pytest.approx([1.0, 1.5, 2.0])
    assert set(widget.view.confidence.series) == {"p0", "p1"}
    assert widget.view.table.rowCount() == 2  # one row per position: its last decision
    assert widget.view.table.item(1, 1).text() == "2"
    assert widget.view.table.item(1, 2).text() == CORRECTED
    assert widget.view.table.item(1, 3).text() == "+2.00"  # its correction
    assert "confidence 0.80" in widget.view.table.item(1, 2).toolTip()
    # A record numbered 0 starts a new acquisition: the trace starts over.
    widget.autofocus.refocused.emit(record(0, 0, 0, 0.0))
    qtbot.waitUntil(lambda: len(widget.view.records) == 1, timeout=WAIT_MS)
    assert set(widget.view.estimate.series) == {"p0"}
    widget.remove()
    widget.close()


def simulated_dock(viewer, qtbot) -> AcquisitionAutofocusWidget:
    model = PlateTruth()
    widget = docked(viewer, simulation=small_plate(), predictor=model)
    assert widget.core is None  # the plate is built once pymmcore-plus is imported
    qtbot.waitUntil(lambda: widget.scope is not None, timeout=WAIT_MS)
    model.scope = widget.scope
    assert widget.core is widget.scope.core
    assert not widget.demo_button.isHidden() and widget.demo_button.isEnabled()
    return widget


def test_closing_during_a_demo_run_cancels_it_and_restores_the_engine(
    make_napari_viewer, qtbot, monkeypatch
):
    monkeypatch.setattr(_acquisition_core, "DEMO_HOURS", 500.0)  # far longer than the test
    threads = python_threads()
    widget = simulated_dock(make_napari_viewer(), qtbot)
    scope, core = widget.scope, widget.core
    before = core.mda.engine
    assert widget.run_demo()
    assert isinstance(core.mda.engine, ZFocusEngine)
    qtbot.waitUntil(lambda: len(widget.view.records) >= 4, timeout=WAIT_MS)
    assert core.mda.is_running() and widget.cancel_button.isEnabled()
    widget.close()  # returns at once; the run ends after its current event
    assert widget.core is None and widget.closed
    qtbot.waitUntil(widget.leftovers.released.is_set, timeout=WAIT_MS)
    assert not core.mda.is_running()
    assert core.mda.engine is before
    with pytest.raises(ZFocusError, match="closed"):
        _ = scope.core
    qtbot.waitUntil(lambda: no_new_threads(threads), timeout=WAIT_MS)
    del core, before
    gc.collect()


def test_a_demo_run_fills_the_trace_then_closing_restores_and_closes(make_napari_viewer, qtbot,
                                                                     monkeypatch):
    infos: list[str] = []
    monkeypatch.setattr("napari_zfocus._qt.acquisition_widget.show_info", infos.append)
    threads = python_threads()
    widget = simulated_dock(make_napari_viewer(), qtbot)
    scope, core = widget.scope, widget.core
    before = core.mda.engine
    widget.demo_button.click()
    # The worker's "finished" reaches the dock and the leftovers as two queued events, which
    # the GUI thread may take in two turns: wait for both, or close() can come in between.
    qtbot.waitUntil(lambda: widget.demo_worker is None and not widget.leftovers.demo_running,
                    timeout=WAIT_MS)
    timepoints = int(_acquisition_core.DEMO_HOURS * 60 / _acquisition_core.DEMO_INTERVAL_MIN) + 1
    records = widget.view.records
    assert len(records) == 2 * timepoints  # one refocus per position and time point
    assert {r.position for r in records} == {"p0", "p1"}
    assert max(abs(r.true_error_um) for r in records) < 0.5  # the perfect model kept focus
    assert widget._frames.frames == 2 * 2 * timepoints  # BF + FL at every visit
    assert infos and "finished" in infos[-1] and f"{len(records)} refocuses" in infos[-1]
    assert len(widget.view.estimate.series["p0"][0]) == timepoints
    assert widget.installed  # stays installed for the next acquisition
    # The plate's newest frames are shown, one layer per channel, FL blended over BF.
    viewer = widget.viewer
    layers = {layer.name: layer for layer in viewer.layers}
    assert set(layers) == {"acquired BF", "acquired FL"}
    assert layers["acquired BF"].data.shape == (64, 64)
    assert layers["acquired FL"].blending == "additive"
    widget.close()
    assert widget.leftovers.released.is_set()  # nothing running: cleaned up at once
    assert core.mda.engine is before
    with pytest.raises(ZFocusError, match="closed"):
        _ = scope.core
    qtbot.waitUntil(lambda: no_new_threads(threads), timeout=WAIT_MS)
    del core, before
    gc.collect()


def test_a_bad_model_file_gives_a_notification(make_napari_viewer, qtbot, scope, errors,
                                               tmp_path):
    bad = tmp_path / "broken.zfm"
    bad.write_bytes(b"not a model")
    widget = docked(make_napari_viewer(), core=scope.core, model_path=bad)
    qtbot.waitUntil(lambda: widget.model_worker is None, timeout=WAIT_MS)
    assert errors and "broken.zfm" in errors[-1]
    assert widget.predictor is None and "loading" not in widget.model_label.text()
    widget.install_button.click()  # nothing to install with: told so, nothing changes
    assert "model" in errors[-1] and not widget.installed
    widget.method_combo.setCurrentText("scan")  # the scan baseline needs no model
    assert widget.install()
    widget.remove()
    # A good file: Install pressed while it loads installs once it has loaded.
    widget.method_combo.setCurrentText("zfocus")
    widget.model_edit.setText(str(write_untrained_model(tmp_path / "tiny.zfm")))
    widget.model_edit.editingFinished.emit()
    assert widget.model_worker is not None
    widget.install_button.click()
    assert not widget.installed and "Waiting for the model" in widget.state_label.text()
    qtbot.waitUntil(lambda: widget.installed, timeout=WAIT_MS)
    assert "tiny.zfm" in widget.model_label.text()
    widget.remove()
    widget.close()


@pytest.fixture
def offline_icons(monkeypatch, tmp_path):
    """pymmcore-widgets fetches its icons from the internet: serve one local SVG."""
    svg = tmp_path / "icon.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')
    monkeypatch.setattr("superqt.iconify.svg_path", lambda *a, **k: svg)


def test_beside_the_mda_widget_of_napari_micromanager(make_napari_viewer, qtbot, scope,
                                                      offline_icons, monkeypatch):
    pytest.importorskip("napari_micromanager")
    from napari._qt.qt_viewer import QtViewer
    from napari_micromanager.main_window import MainWindow
    from pymmcore_widgets import MDAWidget

    # napari's test viewer has a placeholder console without push(): napari-micromanager
    # pushes its names to the console only when there is one.
    monkeypatch.setattr(QtViewer, "console", property(lambda self: None))

    core = scope.core
    viewer = make_napari_viewer()
    viewer.window.add_dock_widget(MainWindow(viewer, mmcore=core))  # napari-micromanager
    widget = docked(viewer, predictor=PlateTruth(scope))
    assert widget.core is core and "napari-micromanager" in widget.core_label.text()
    assert widget.scope is None and widget.demo_button.isHidden()  # not our plate
    mda = MDAWidget(mmcore=core)  # the MDA widget napari-micromanager embeds
    viewer.window.add_dock_widget(mda)
    widget.install_button.click()
    frames: list[dict] = []
    core.mda.events.frameReady.connect(lambda image, event, meta: frames.append(meta))
    mda.setValue(useq.MDASequence(
        stage_positions=scope.position_list(),
        channels=[{"group": "Channel", "config": "FL"}],
        time_plan={"interval": 0, "loops": 3},
        axis_order="tpcz",
    ))
    assert len(mda.value().stage_positions) == 2
    mda.control_btns.run_btn.click()  # runs core.run_mda(widget.value()) on its thread
    qtbot.waitUntil(lambda: len(frames) == 6 and not core.mda.is_running(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(widget.view.records) == 6, timeout=WAIT_MS)
    records = widget.view.records
    assert sorted((r.p, r.t) for r in records) == [(p, t) for p in range(2) for t in range(3)]
    assert all("zfocus" in meta for meta in frames)  # every frame carries its focus record
    assert widget._frames.frames == 6
    assert set(widget.view.estimate.series) == {"p0", "p1"}
    widget.close()
    assert not isinstance(core.mda.engine, ZFocusEngine)
