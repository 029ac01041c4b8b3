"""The one JSON helper of every ``--json`` output: strict JSON, numpy and paths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from napari_zfocus._json import jsonable, to_json_line


def test_non_finite_numbers_become_null_so_the_line_is_strict_json() -> None:
    line = to_json_line({"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": (np.nan,)})
    assert json.loads(line, parse_constant=lambda c: 1 / 0) == {
        "a": None, "b": [None, None, 1.5], "c": [None]}


def test_numpy_scalars_arrays_bools_and_paths_become_plain_json() -> None:
    obj = {1: np.float32(0.5), "n": np.int64(3), "ok": np.bool_(True),
           "arr": np.array([[1, 2], [3, 4]]), "where": Path("a") / "b.zfm", "s": "x"}
    assert jsonable(obj) == {"1": 0.5, "n": 3, "ok": True, "arr": [[1, 2], [3, 4]],
                             "where": str(Path("a") / "b.zfm"), "s": "x"}
    assert type(jsonable(np.bool_(False))) is bool and type(jsonable(np.int16(2))) is int
    assert json.loads(to_json_line(obj))["arr"] == [[1, 2], [3, 4]]


def test_plain_values_print_as_json_dumps_does() -> None:
    obj = {"frames": 3, "fps": 12.25, "holds": {"dead-band": 2}, "stopped": False, "x": None}
    assert to_json_line(obj) == json.dumps(obj)
