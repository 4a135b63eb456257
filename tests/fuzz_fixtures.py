"""The fixture that records how many cases the fuzz tests tried, and the summary line that shows it.

Fuzz modules load it with ``pytest_plugins = ["tests.fuzz_fixtures"]``. docs/security.md quotes the
counts; with FACEAUTH_ARTIFACTS_DIR set, each module also writes them to ``<dir>/<module>.json``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

_CASES = pytest.StashKey[dict[str, Counter[str]]]()


@pytest.fixture(scope="module")
def fuzz_cases(request: pytest.FixtureRequest) -> Iterator[Counter[str]]:
    """A counter the module's fuzz tests add their cases to, by kind."""
    name = request.module.__name__.rpartition(".")[2]
    cases = request.config.stash.setdefault(_CASES, {}).setdefault(name, Counter())
    yield cases
    directory = os.environ.get("FACEAUTH_ARTIFACTS_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        report = {"total": sum(cases.values()), "cases": dict(sorted(cases.items()))}
        (Path(directory) / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for name, cases in config.stash.get(_CASES, {}).items():
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(cases.items()))
        terminalreporter.write_line(f"{name}: {sum(cases.values())} fuzz cases ({kinds})")
