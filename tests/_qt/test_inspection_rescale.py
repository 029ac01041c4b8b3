"""Inspection dock, "Rescale" tab: a model's distance scale from unannotated stacks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import tifffile

from _inspection_dock import idle, loaded_dock
from napari_zfocus._qt.inspection_widget import InspectionWidget
from napari_zfocus.data.stack import write_stack
from napari_zfocus.model.inference import Predictor
from napari_zfocus.model.io import load_model
from napari_zfocus.model.network import build_network


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.model.io import save_model

    root = tmp_path_factory.mktemp("rescale")
    config = ModelConfig(field_um=12, pixel_size_um=0.24, conv_features=(4, 8), fc_features=32)
    model = save_model(root / "tiny.zfm", build_network(config), config)
    rng = np.random.default_rng(0)
    stacks = [root / f"s{k}.tif" for k in range(3)]
    for path in stacks:
        write_stack(path, rng.integers(100, 4000, (25, 56, 56), dtype=np.uint16),
                    z_step_um=1.0, pixel_size_um=0.24)
    plain = root / "plain.tif"  # no z-step, no pixel size in the file
    tifffile.imwrite(plain, rng.integers(100, 4000, (25, 56, 56), dtype=np.uint16))
    return SimpleNamespace(model=model, stacks=stacks, plain=plain, root=root)


@pytest.fixture
def reads_gain(monkeypatch):
    """Make every model read ``gain`` x the true defocus of the stacks it is given."""
    def use(gain: float) -> None:
        def predict_batch(self, images, pixel_size_um, **_):
            focus = len(images) / 2 - 0.3
            return [SimpleNamespace(z_um=float(np.clip(gain * (i - focus), -15, 15)) / self.gain)
                    for i in range(len(images))]
        monkeypatch.setattr(Predictor, "predict_batch", predict_batch)
    return use


@pytest.fixture
def errors(monkeypatch):
    messages: list[str] = []
    monkeypatch.setattr("napari_zfocus._qt._dock.show_error", messages.append)
    return messages


def test_rescale_writes_loads_and_shows_the_new_model(make_napari_viewer, qtbot, setup,
                                                      reads_gain, tmp_path):
    reads_gain(1.3)
    widget = loaded_dock(make_napari_viewer, qtbot, setup.model)
    tab = widget.rescaling
    assert tab.output.text() == str(setup.root / "tiny_rescaled.zfm")  # suggested
    out = tmp_path / "rescaled.zfm"
    tab.output.setText(str(out))
    tab.add_stacks([str(p) for p in setup.stacks] + [str(setup.stacks[0])])
    assert tab.stack_paths() == [str(p) for p in setup.stacks]  # each once
    tab.rescale_button.click()
    assert not tab.rescale_button.isEnabled() and tab.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: widget.state.model.path == out, timeout=30000)
    assert widget.state.predictor.gain == pytest.approx(1.3, abs=1e-3)
    assert load_model(out).distance_scale.gain == pytest.approx(1.3, abs=1e-3)
    assert "divided by 1.30" in widget.model_info.toPlainText()
    assert tab.status.text().startswith("Reads 1.30x the true distance on 3 of 3 stacks")
    assert tab.output.text() == str(tmp_path / "rescaled_rescaled.zfm")  # for the next one
    # The worker's "finished" reaches the GUI thread after the pool is idle: wait for it.
    qtbot.waitUntil(lambda: tab.rescale_button.isEnabled() and not tab.cancel_button.isEnabled(),
                    timeout=30000)
    qtbot.waitUntil(idle, timeout=30000)


def test_bad_input_is_notified_and_nothing_is_written(make_napari_viewer, qtbot, setup,
                                                      reads_gain, errors, tmp_path):
    reads_gain(1.3)
    widget = loaded_dock(make_napari_viewer, qtbot, setup.model)
    tab = widget.rescaling
    out = tmp_path / "r.zfm"
    tab.output.setText(str(out))
    tab.rescale()
    assert "Add z-stacks" in errors[-1]
    # An existing file is never replaced by the dock, a model file neither.
    notes = tmp_path / "notes.zfm"
    notes.write_text("mine")
    tab.output.setText(str(notes))
    tab.add_stacks([str(setup.stacks[0])])
    tab.rescale()
    assert "notes.zfm" in errors[-1] and notes.read_text() == "mine"
    tab.output.setText(str(setup.model))
    tab.rescale()
    assert "a model already exists; choose a new file name" in errors[-1]
    # A stack without its z-step: named; with the dock's z-step it works.
    tab.stacks.clear()
    tab.add_stacks([str(setup.plain)])
    tab.output.setText(str(out))
    tab.rescale()
    qtbot.waitUntil(lambda: not widget.state.rescale_job.running, timeout=30000)
    assert "plain.tif" in errors[-1] and "z-step" in errors[-1] and not out.exists()
    assert tab.status.text() == "Failed: nothing written."
    tab.z_step.setValue(1.0)
    tab.rescale()
    qtbot.waitUntil(lambda: not widget.state.rescale_job.running, timeout=30000)
    assert "plain.tif: its pixel size is unknown" in errors[-1] and not out.exists()
    tab.pixel_size.setValue(0.24)
    tab.rescale()
    qtbot.waitUntil(lambda: widget.state.model.path == out, timeout=30000)
    assert widget.state.predictor.gain == pytest.approx(1.3, abs=1e-3)
    qtbot.waitUntil(idle, timeout=30000)


def test_closing_the_viewer_while_rescaling_leaves_no_thread(make_napari_viewer, qtbot, setup,
                                                             tmp_path):
    viewer = make_napari_viewer()
    widget = InspectionWidget(viewer, model_path=setup.model)
    qtbot.waitUntil(lambda: widget.state.predictor is not None, timeout=30000)
    viewer.window.add_dock_widget(widget)
    widget.rescaling.add_stacks([str(p) for p in setup.stacks])
    widget.rescaling.output.setText(str(tmp_path / "r.zfm"))
    widget.rescaling.rescale()
    viewer.close()
    qtbot.waitUntil(idle, timeout=30000)


def test_a_referenced_model_is_set_to_a_condenser_aperture_without_stacks(
        make_napari_viewer, qtbot, setup, errors, tmp_path):
    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.model.io import save_model

    config = ModelConfig(field_um=12, pixel_size_um=0.24, conv_features=(4, 8), fc_features=32,
                         reference_condenser_na=0.4)
    model = save_model(tmp_path / "ref.zfm", build_network(config), config)
    plain = loaded_dock(make_napari_viewer, qtbot, setup.model).rescaling
    plain.condenser_na.setValue(0.5)
    plain.output.setText(str(tmp_path / "never.zfm"))
    plain.rescale()  # a model of true distances has no reference to scale from
    assert "tiny.zfm: was trained without a reference" in errors[-1]
    widget = loaded_dock(make_napari_viewer, qtbot, model)
    assert "as at condenser aperture 0.4" in widget.model_info.toPlainText()
    tab = widget.rescaling
    out = tmp_path / "at05.zfm"
    tab.output.setText(str(out))
    tab.condenser_na.setValue(0.5)
    tab.add_stacks([str(setup.stacks[0])])
    tab.rescale()  # stacks and an aperture: which one?
    assert "not both" in errors[-1] and not out.exists()
    tab.stacks.clear()
    tab.rescale()
    qtbot.waitUntil(lambda: widget.state.model.path == out, timeout=30000)
    assert widget.state.predictor.gain == pytest.approx(1.25)
    assert load_model(out).distance_scale.fitted["condenser_na"] == 0.5
    assert tab.status.text().startswith("Condenser aperture 0.5 against the model's "
                                        "reference 0.4: readings divided by 1.25")
    assert "divided by 1.25 (aperture 0.50)" in widget.model_info.toPlainText()
    qtbot.waitUntil(idle, timeout=30000)
