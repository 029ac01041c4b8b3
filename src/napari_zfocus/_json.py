"""The one JSON helper of every ``--json`` output: strict JSON from numpy-laden summaries.

``json.dumps`` writes ``NaN`` and ``Infinity`` (not JSON: strict parsers such as ``jq`` or
JavaScript refuse the whole line) and fails on numpy scalars, arrays and paths. Summaries
are full of those (a session without frames has a NaN mean error; metrics are numpy
floats), so every command prints its ``--json`` line through :func:`to_json_line`.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

__all__ = ["jsonable", "to_json_line"]


def jsonable(obj: Any) -> Any:
    """``obj`` made of plain JSON types: NaN/inf -> None, numpy -> Python, paths -> str.

    Dicts (keys as str), lists and tuples are converted recursively; anything else is
    returned as it is (``json.dumps`` then decides).
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def to_json_line(obj: Any) -> str:
    """One line of strict JSON for ``obj`` (see :func:`jsonable`)."""
    return json.dumps(jsonable(obj), allow_nan=False)
