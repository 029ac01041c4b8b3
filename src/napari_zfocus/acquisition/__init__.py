"""Autofocus inside multi-dimensional acquisitions (pymmcore-plus MDA), without Qt.

One bright-field frame per position and time point: the MDA engine of this package
switches to a focus channel, lets the z-position CNN read the defocus, corrects the focus
under the live controller's safety rules, and carries the correction to every later event of
that position. A simulated multi-position microscope on ``UniMMCore`` and a scan
autofocus baseline (like Micro-Manager's OughtaFocus) make it testable without hardware.

pymmcore-plus and useq-schema are optional (``pip install napari-zfocus[micromanager]``);
they are imported only when an acquisition is set up.
"""
