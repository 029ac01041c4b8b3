"""Inspection dock, "Calibrate" tab: the confidence and OOD check refitted on held-out stacks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from _inspection_dock import idle, loaded_dock
from _tiny import write_noise_dataset, write_untrained_model
from napari_zfocus._qt.inspection_widget import InspectionWidget
from napari_zfocus.model.io import load_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrate_tab")
    # 12 stacks x 11 slices within -5..+5 um: 132 images, enough for an OOD reference
    return SimpleNamespace(
        root=root, model=write_untrained_model(root / "tiny.zfm"),
        dataset=write_noise_dataset(root / "held_out", 12, (13, 56, 60), focus_index=6))


@pytest.fixture
def errors(monkeypatch):
    messages: list[str] = []
    monkeypatch.setattr("napari_zfocus._qt._dock.show_error", messages.append)
    return messages


def test_calibrate_writes_loads_and_shows_the_calibrated_model(make_napari_viewer, qtbot,
                                                               setup, tmp_path):
    widget = loaded_dock(make_napari_viewer, qtbot, setup.model)
    tab = widget.calibrating
    assert widget.tabs.tabText(widget.tabs.indexOf(tab)) == "Calibrate"
    assert tab.output.text() == str(setup.root / "tiny_calibrated.zfm")  # suggested
    assert not widget.state.predictor.calibrated
    out = tmp_path / "calibrated.zfm"
    tab.output.setText(str(out))
    tab.folder.setText(str(setup.dataset))
    tab.calibrate_button.click()
    assert not tab.calibrate_button.isEnabled() and tab.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: widget.state.model.path == out, timeout=60000)
    assert widget.state.predictor.calibrated
    calibration = load_model(out).calibration
    assert calibration is not None and calibration.ood is not None
    assert calibration.fitted["images"] == 132
    assert tab.status.text().endswith(f"Saved as {out} and loaded.")
    assert "132 images" in tab.status.text()
    assert tab.output.text() == str(tmp_path / "calibrated_calibrated.zfm")  # for the next
    # The worker's "finished" reaches the GUI thread after the pool is idle: wait for it.
    qtbot.waitUntil(lambda: tab.calibrate_button.isEnabled() and not tab.cancel_button.isEnabled(),
                    timeout=30000)
    qtbot.waitUntil(idle, timeout=30000)


def test_bad_input_is_notified_and_nothing_is_written(make_napari_viewer, qtbot, setup,
                                                      errors, tmp_path):
    widget = loaded_dock(make_napari_viewer, qtbot, setup.model)
    tab = widget.calibrating
    out = tmp_path / "c.zfm"
    tab.output.setText(str(out))
    tab.calibrate()
    assert "annotated held-out stacks" in errors[-1]
    notes = tmp_path / "notes.zfm"  # an existing file is never replaced
    notes.write_text("mine")
    tab.output.setText(str(notes))
    tab.folder.setText(str(setup.dataset))
    tab.calibrate()
    assert "notes.zfm" in errors[-1] and notes.read_text() == "mine"
    # A folder without annotations.csv: the worker's error names it; nothing is written.
    tab.output.setText(str(out))
    tab.folder.setText(str(tmp_path))
    tab.calibrate()
    qtbot.waitUntil(lambda: not widget.state.calibrate_job.running, timeout=30000)
    assert "annotations.csv" in errors[-1] and not out.exists()
    assert tab.status.text() == "Failed: nothing written."
    assert widget.state.model.path == setup.model  # the old model stays
    qtbot.waitUntil(idle, timeout=30000)


def test_cancelling_writes_nothing_and_closing_leaves_no_thread(make_napari_viewer, qtbot,
                                                                setup, tmp_path):
    viewer = make_napari_viewer()
    widget = InspectionWidget(viewer, model_path=setup.model)
    qtbot.waitUntil(lambda: widget.state.predictor is not None, timeout=30000)
    viewer.window.add_dock_widget(widget)
    tab = widget.calibrating
    out = tmp_path / "c.zfm"
    tab.output.setText(str(out))
    tab.folder.setText(str(setup.dataset))
    tab.calibrate()
    tab.cancel_button.click()  # before the first image: the job stops at once
    qtbot.waitUntil(lambda: not widget.state.calibrate_job.running, timeout=30000)
    assert not out.exists() and tab.status.text() == "Cancelled: nothing written."
    tab.calibrate()
    viewer.close()
    qtbot.waitUntil(idle, timeout=30000)
