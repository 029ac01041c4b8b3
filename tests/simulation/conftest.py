"""Small, fast settings shared by the simulator tests (64 x 64 px fields)."""

from __future__ import annotations

import pytest

from napari_zfocus.simulation import OpticsParams, SimulationParams


@pytest.fixture
def small_params() -> SimulationParams:
    """A 31-slice stack of 64 x 64 px with few source points (~0.1 s)."""
    return SimulationParams(
        shape=(64, 64),
        n_cells=(5.0, 15.0),
        optics=OpticsParams(n_source_points=8, margin_um=4.0),
    )
