"""docs/ARCHITECTURE.md lists every module with its docstring's first line: it cannot drift."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "scripts" / "module_map.py"


def test_module_map_in_architecture_doc_matches_the_code():
    spec = importlib.util.spec_from_file_location("module_map", SCRIPT)
    module_map = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module_map)
    text = module_map.DOC.read_text(encoding="utf-8")
    assert module_map.rewrite(text) == text, (
        "docs/ARCHITECTURE.md is out of date: run python docs/scripts/module_map.py --write"
    )
