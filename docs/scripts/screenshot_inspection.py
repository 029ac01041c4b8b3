"""Screenshot of the inspection dock in use (docs/images/inspection.png).

A simulated yeast z-stack is opened in the viewer, the dock predicts the displayed slice
(softmax bar chart), computes a tiled focus map over the field (colour-mapped z layer on
top of the image) and evaluates the model on a small simulated test set (confusion
heatmap, metrics beside the focus-score baselines).

The PNG is the whole window with the dock's "Evaluate" tab, and, appended on the right, the
same dock showing its "Image" tab (slice prediction and focus-map controls).

Model: the bundled demo model when it exists, else a small CNN trained here for a few
minutes on simulated stacks (cached in the temp folder, shared with screenshot_live.py).

Run: xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/scripts/screenshot_inspection.py
(an optional argument writes the PNG elsewhere: ... screenshot_inspection.py /tmp/inspection.png)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Where the PNG goes: the first argument, else the picture of the docs.
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images" / "inspection.png"
DEMO = ROOT / "src" / "napari_zfocus" / "resources" / "demo_model.zfm"
CACHE = Path(tempfile.gettempdir()) / "zfocus-screenshot"


def small_model(minutes: float = 10.0) -> Path:
    """The demo model, or a small CNN (30 um field at 0.48 um/px, 1 um bins over +/-15 um)
    trained here for ``minutes`` (coarser pixels than the paper's 0.24 um: 4x cheaper)."""
    if DEMO.exists():
        return DEMO
    model = CACHE / "small_model.zfm"
    if model.exists():
        return model
    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.simulation import SimulationParams, simulate_dataset
    from napari_zfocus.training.loop import TrainConfig, train

    data = CACHE / "train"
    if not (data / "annotations.csv").exists():
        print("simulating training stacks...", flush=True)
        simulate_dataset(data, 24, seed=3, params=SimulationParams(shape=(160, 160)),
                         overwrite=True)
    config = ModelConfig(field_um=30.0, pixel_size_um=0.48, z_min_um=-15.0, z_max_um=15.0,
                         conv_features=(16, 32), fc_features=128)
    tc = TrainConfig(out=model, minutes=minutes, batch=32, lr=1e-3, validation_every=200)
    for event in train(data, config, tc):
        if event.kind in ("validation", "done"):
            print(f"step {event.step}: {event.metrics}", flush=True)
    return model


def test_set(model: Path) -> Path:
    """Six simulated stacks never seen in training, wide enough for the model's field."""
    from napari_zfocus.model.io import read_model_info
    from napari_zfocus.simulation import SimulationParams, simulate_dataset

    config = read_model_info(model)[0]
    side = max(160, int(config.field_um / 0.24) + 8)  # the demo model reads 60 um (250 px)
    folder = CACHE / f"test-{side}px"
    if not (folder / "annotations.csv").exists():
        simulate_dataset(folder, 6, seed=99, params=SimulationParams(shape=(side, side)),
                         overwrite=True)
    return folder


def wait(condition, timeout_s: float = 600.0) -> None:
    """Run the Qt event loop until ``condition()`` holds."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            sys.exit("timed out")
        QApplication.processEvents()
        time.sleep(0.02)


def main() -> None:
    import napari
    import numpy as np
    from matplotlib.image import imsave
    from qtpy.QtCore import QPoint
    from qtpy.QtWidgets import QApplication

    from napari_zfocus._qt.inspection_widget import Z_SUFFIX, InspectionWidget
    from napari_zfocus.simulation import SimulationParams, simulate_stack

    model = small_model()
    folder = test_set(model)
    # Cell density like the training stacks (a sparse field fools a small model: the
    # paper's "few cells in the crop" failure case).
    stack = simulate_stack(
        SimulationParams(shape=(320, 448), n_slices=21, n_cells=400.0, max_tilt=0.04), seed=5
    )

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    layer = viewer.add_image(stack.data, name="yeast stack", scale=(1.0, 0.24, 0.24),
                             metadata={"pixel_size_um": 0.24})
    widget = InspectionWidget(viewer, model_path=model)
    viewer.window.add_dock_widget(widget, name="Inspect predictions", area="right")
    viewer.dims.set_current_step(0, stack.focus_index + 3)
    state = widget.state
    wait(lambda: state.predictor is not None)  # the model file is read in a worker

    widget.image.tile_um.setValue(15.0)  # 15 um tiles, each read with the model's 30 um window
    widget.image.compute_focus_map()
    wait(lambda: layer.name + Z_SUFFIX in viewer.layers and not state.map_job.running)
    widget.image.predict_current()
    wait(lambda: state.last_prediction is not None)

    widget.evaluation.dataset_path.setText(str(folder))
    widget.evaluation.evaluate()
    wait(lambda: not state.eval_job.running)
    if state.result is None:
        sys.exit("the evaluation failed (see the notification above)")
    viewer.layers.selection.active = layer
    viewer.reset_view()

    def grab(tab: int) -> np.ndarray:
        widget.tabs.setCurrentIndex(tab)
        for _ in range(20):
            QApplication.processEvents()
            time.sleep(0.05)
        return np.asarray(viewer.screenshot(canvas_only=False, flash=False))

    image_tab = grab(0)
    window = grab(1)
    # The dock's rectangle in window pixels (the screenshot may be scaled by the DPR).
    dock = widget.parentWidget()
    top_left = dock.mapTo(viewer.window._qt_window, QPoint(0, 0))
    ratio = window.shape[1] / viewer.window._qt_window.width()
    x0, y0 = int(top_left.x() * ratio), int(top_left.y() * ratio)
    x1, y1 = x0 + int(dock.width() * ratio), y0 + int(dock.height() * ratio)
    panel = np.zeros((window.shape[0], x1 - x0 + 8, window.shape[2]), window.dtype)
    panel[..., :3] = 38  # napari's dark background between the two
    if panel.shape[2] == 4:
        panel[..., 3] = 255
    panel[y0:y1, 8:] = image_tab[y0:y1, x0:x1]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    imsave(OUT, np.concatenate([window, panel], axis=1))
    print(f"wrote {OUT}")
    viewer.close()


if __name__ == "__main__":
    main()
