"""`zfocus demo`: napari + simulated microscope + shipped demo model + live dock, running."""

from __future__ import annotations

from qtpy.QtCore import QThreadPool

from napari_zfocus.cli.demo import build_demo
from napari_zfocus.live.headless import DEMO_MODEL, demo_model_path
from napari_zfocus.model.io import load_model


def test_demo_model_ships_small_and_loads_with_its_metadata():
    path = demo_model_path()
    assert path.stat().st_size < 8e6  # "a few MB"
    loaded = load_model(path)
    assert loaded.config.n_bins == 41 and loaded.config.field_um == 60.0
    assert loaded.metadata["demo_model"]["weights"] == "float16"


def test_demo_opens_live_view_with_the_demo_model(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = build_demo(viewer)
    assert widget.model_label.text().startswith(DEMO_MODEL.name)
    qtbot.waitUntil(lambda: widget.last_output is not None, timeout=20000)
    assert widget.is_live
    prediction = widget.last_output.prediction
    assert prediction is not None and -20 <= prediction.z_um <= 20
    assert len(viewer.layers) == 1  # one live layer, updated in place
    widget.stop_live()
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=30000)
