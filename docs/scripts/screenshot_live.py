"""Screenshot of the live autofocus dock in use (docs/images/live.png).

Live view of a simulated microscope (drifting, growing yeast scene, time sped up 60x, as
the dock's default but with a field as crowded as the training stacks: the small model
below fails on near-empty fields, the paper's "few cells" failure case) with focus locked
and autofocus on. Half-way through, the focus drive is
knocked 4 um off (as a bumped stage would be); the trace shows the controller bringing the
sample back into focus.

Model: the bundled demo model when it exists, else the small CNN of
screenshot_inspection.py (trained there, cached in the temp folder).

Run: xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/scripts/screenshot_live.py
[OUT.png]
(OUT.png: where to write; default docs/images/live.png)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _screenshot import open_dock, run_for, save_screenshot
from screenshot_inspection import ROOT, small_model, wait

OUT = ROOT / "docs" / "images" / "live.png"


def main() -> None:
    from napari_zfocus._qt.live_widget import LiveAutofocusWidget
    from napari_zfocus.live.microscope_factory import SIM_SPEED
    from napari_zfocus.live.scenes import SimulatorRenderer
    from napari_zfocus.live.simulated_microscope import (
        ScaledClock,
        SimulatedMicroscope,
        SimulatedMicroscopeSettings,
    )

    model = small_model()
    microscope = SimulatedMicroscope(
        SimulatedMicroscopeSettings(background_render=True),
        renderer=SimulatorRenderer((256, 256), 0.24, n_cells=250),
        clock=ScaledClock(SIM_SPEED),
    )
    viewer, widget = open_dock(
        lambda v: LiveAutofocusWidget(v, microscope=microscope, model_path=model), "Live autofocus"
    )

    microscope.move_z_to(microscope.sample_z_um())  # the user focuses by hand first
    widget.start_live()
    wait(lambda: widget.last_output is not None, timeout_s=300)
    run_for(2.0)
    widget.lock_button.setChecked(True)  # lock on the current (in-focus) estimate
    widget.autofocus_box.setChecked(True)
    run_for(6.0)
    widget.loop.submit(lambda: widget.microscope.move_z_by(4.0))  # bump the focus drive
    run_for(10.0)
    widget.trace.repaint()
    widget.softmax.repaint()
    run_for(0.5)
    out = save_screenshot(viewer, OUT)
    stats = widget.last_stats
    print(f"wrote {out}; {stats.fps:.0f} frames/s processed" if stats else f"wrote {out}")
    widget.stop_live()
    wait(lambda: not widget.loop.running, timeout_s=60)  # stopping does not block
    viewer.close()
    microscope.close()


if __name__ == "__main__":
    main()
