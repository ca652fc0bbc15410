"""README's layout table names every module and folder of the package, so that it cannot drift from the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "element_session"


def _layout_table() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Repository layout", 1)[1].split("\n## ", 1)[0]


def _named(table: str) -> set[str]:
    """Every path the table names: a row's first cell lists `dir/file.py` and siblings as `file.py`."""
    named = set()
    for line in table.splitlines():
        cells = line.split("|")
        if len(cells) < 3 or not cells[1].strip().startswith("`element_session/"):
            continue
        paths = re.findall(r"`([^`]+)`", cells[1])
        folder = str(Path(paths[0]).parent) if not paths[0].endswith("/") else paths[0].rstrip("/")
        for path in paths:
            named.add(path.rstrip("/") if "/" in path else f"{folder}/{path}")
    return named


def test_every_module_and_folder_of_the_package_is_in_the_readme_layout_table():
    named = _named(_layout_table())
    top = {
        f"element_session/{p.name}"
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
    }
    within = {str(Path(n).parent) for n in named}  # a folder is named by any of its files
    missing = sorted(top - named - within)
    assert not missing, f"README.md's layout table does not name {missing}"
    gone = sorted(n for n in named if n.startswith("element_session/") and not (ROOT / n).exists())
    assert not gone, f"README.md's layout table names paths that do not exist: {gone}"
