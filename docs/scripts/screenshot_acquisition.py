"""Screenshot of the "Autofocus during acquisition" dock after a demo acquisition.

The dock on its own simulated plate (4 positions, bright-field simulator, the plate's
thermal drift), the demo model, then "Run demo acquisition": a 2 h time-lapse of every
position in BF and FL on the simulated clock, refocusing with one frame before each
position and time point. The screenshot shows the per-position traces and last decisions.

Run: xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python \\
    docs/scripts/screenshot_acquisition.py [OUT.png]
(OUT.png: where to write; default docs/images/acquisition_dock.png)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _screenshot import open_dock, run_for, save_screenshot
from screenshot_inspection import ROOT, wait

OUT = ROOT / "docs" / "images" / "acquisition_dock.png"


def main() -> None:
    from napari_zfocus._qt.acquisition_widget import AcquisitionAutofocusWidget

    viewer, widget = open_dock(AcquisitionAutofocusWidget, "Autofocus during acquisition")
    wait(lambda: widget.scope is not None and widget.predictor is not None, timeout_s=300)
    t0 = time.perf_counter()
    assert widget.run_demo()
    wait(lambda: widget.demo_worker is None, timeout_s=900)
    wall = time.perf_counter() - t0
    widget.view.repaint_now()
    run_for(0.5)
    out = save_screenshot(viewer, OUT)
    records = widget.view.records
    errors = [abs(r.true_error_um) for r in records]
    print(f"wrote {out}; demo: {widget._frames.frames} frames, {len(records)} refocuses, "
          f"{sum(r.focus_frames for r in records) / max(1, len(records)):.2f} focus frames "
          f"per refocus, max true error {max(errors, default=float('nan')):.2f} um, "
          f"{wall:.0f} s wall")
    widget.close()
    wait(widget.leftovers.released.is_set, timeout_s=60)
    viewer.close()


if __name__ == "__main__":
    main()
