"""Screenshot of the annotation dock in use (docs/images/annotation.png).

Simulates a small dataset of bright-field yeast stacks (without annotations), opens it,
marks two stacks and leaves the third on its computed suggestion.

Run: xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/scripts/screenshot_annotation.py
(an optional argument writes the PNG elsewhere: ... screenshot_annotation.py /tmp/annotation.png)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_zfocus._qt.annotation_widget import AnnotationWidget
from napari_zfocus.simulation import SimulationParams, simulate_dataset

#: Where the PNG goes: the first argument, else the picture of the docs.
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else (
    Path(__file__).resolve().parents[1] / "images" / "annotation.png")


def wait(condition, timeout_s: float = 60.0) -> None:
    """Run the Qt event loop until ``condition()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            sys.exit("timed out waiting for the widget")
        QApplication.processEvents()
        time.sleep(0.02)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="zfocus-annotate-"))
    simulate_dataset(folder, 8, seed=7, params=SimulationParams(n_slices=31, shape=(320, 320)))
    (folder / "annotations.csv").unlink()  # start as a user would: stacks, no marks

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    widget = AnnotationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Annotate in-focus slices", area="right")
    widget.open_folder(folder)
    for _ in range(2):  # confirm two suggestions (Enter), as a user would
        position = widget.state.current
        wait(lambda p=position: widget.state.entries[p].suggested_index is not None)
        widget.confirm_suggestion()
    position = widget.state.current
    wait(lambda: widget.state.entries[position].suggested_index is not None)
    wait(lambda: widget.suggestions.computing is None)
    # Show a marked stack two slices above its mark.
    widget.show_stack(1)
    widget.go_to_slice(widget.state.entries[1].focus_index + 2)
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.screenshot(str(OUT), canvas_only=False, flash=False)
    print(f"wrote {OUT}")
    viewer.close()


if __name__ == "__main__":
    main()
