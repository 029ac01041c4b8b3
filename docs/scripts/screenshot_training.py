"""Screenshot of the training dock after a short run (docs/images/training.png).

Simulates a small annotated dataset, trains with the widget's default (recommended) setting
(the feature network on a 60 um field at 0.48 um/px, 41 one-um bins) for a short
step budget from the widget's own form, and captures the window with the live loss /
validation curves and the final metrics.

Run: xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/scripts/screenshot_training.py
[OUT.png]
(OUT.png: where to write; default docs/images/training.png)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_zfocus._qt.training_widget import TrainingWidget
from napari_zfocus.data import read_dataset
from napari_zfocus.simulation import SimulationParams, simulate_dataset
from napari_zfocus.training.run_state import RunState

OUT = Path(__file__).resolve().parents[1] / "images" / "training.png"


def wait(condition, timeout_s: float = 900.0) -> None:
    """Run the Qt event loop until ``condition()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            sys.exit("timed out waiting for training")
        QApplication.processEvents()
        time.sleep(0.02)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="zfocus-train-"))
    simulate_dataset(folder, 20, seed=11, params=SimulationParams(n_slices=31, shape=(300, 300)))

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    widget = TrainingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train z-position CNN", area="right")
    dataset = read_dataset(folder)
    first = dataset.annotations[0]
    viewer.add_image(dataset.open_stack(first).data, name=first.stack, scale=(1.0, 0.24, 0.24))
    viewer.dims.set_point(0, first.focus_index)

    widget.dataset_edit.setText(str(folder))
    widget.model_edit.setText(str(folder / "model.zfm"))
    widget.steps_spin.setValue(600)
    widget.minutes_spin.setValue(10)
    assert widget.start()
    wait(lambda: widget.run.state in (RunState.DONE, RunState.FAILED) and widget.worker is None)
    if widget.run.state is RunState.FAILED:
        sys.exit(f"training failed: {widget.run.error}")
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    print(f"wrote {out}; {widget.run.status_text()}; {widget.metrics_label.text()}")
    viewer.close()


if __name__ == "__main__":
    main()
