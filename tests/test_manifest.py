"""The npe2 manifest reaches the installed package and every contribution imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

npe2 = pytest.importorskip("npe2")


def test_manifest_found_and_valid():
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-zfocus")
    assert manifest.name == "napari-zfocus"
    keys = {s.key for s in manifest.contributions.sample_data}
    assert {"yeast_stack", "annotated_set"} <= keys
    assert len(manifest.contributions.widgets) == 4


def test_every_python_name_imports():
    # `npe2 validate --imports` also imports every python_name (without it a missing one passes).
    proc = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-zfocus", "--imports"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
