"""Print (or check) the module map of docs/ARCHITECTURE.md from the modules' own docstrings.

The map lists every module of the package with the first line of its docstring, so it can
never drift from the code: ``tests/test_architecture_doc.py`` fails when it does. Run::

    python docs/scripts/module_map.py          # print the map
    python docs/scripts/module_map.py --write  # rewrite the block in docs/ARCHITECTURE.md
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "napari_zfocus"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
BEGIN, END = "<!-- module-map:begin -->", "<!-- module-map:end -->"


def first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def module_map() -> str:
    lines = ["```"]
    for path in sorted(PACKAGE.rglob("*.py"), key=lambda p: (p.parent != PACKAGE, str(p))):
        rel = path.relative_to(PACKAGE).as_posix()
        if path.name == "__init__.py" and not first_line(path):
            continue
        lines.append(f"{rel:<34} {first_line(path)}".rstrip())
    lines.append("```")
    return "\n".join(lines)


def rewrite(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{module_map()}\n{END}{tail}"


if __name__ == "__main__":
    if "--write" in sys.argv:
        DOC.write_text(rewrite(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(module_map())
