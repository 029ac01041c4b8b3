"""Shared fixtures.

Tests of the Qt-free core need no display; widget tests use pytest-qt's ``qtbot`` and
napari's ``make_napari_viewer`` (pytest-xvfb provides the X server).
"""

from __future__ import annotations

import os

import pytest

# Keep torch from oversubscribing the 2 CI cores when tests run alongside Xvfb.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _torch_threads():
    """Tests share two cores: cap torch's intra-op threads (cheap, no import if unused)."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(2)
    yield
