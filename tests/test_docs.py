"""The root README's configuration table names every environment variable the code reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIABLE = re.compile(r"\bFACEAUTH_[A-Z0-9_]+\b")


def variables_read_by_code() -> set[str]:
    sources = [*(ROOT / "libs").rglob("*.py"), *(ROOT / "services").rglob("*.py"), *(ROOT / "scripts").glob("*.sh")]
    return {name for path in sources for name in VARIABLE.findall(path.read_text(encoding="utf-8"))}


def test_every_environment_variable_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Configuration"):]
    documented = set(re.findall(r"^\| `(FACEAUTH_[A-Z0-9_]+)`", table, flags=re.MULTILINE))
    assert variables_read_by_code() - documented == set()
