"""Shared stack data of the tests in tests/data (test_stack_io.py, test_stack_bad_input.py)."""

from __future__ import annotations

import numpy as np


def _data(z: int = 5, y: int = 16, x: int = 20) -> np.ndarray:
    return np.arange(z * y * x, dtype=np.uint16).reshape(z, y, x)
