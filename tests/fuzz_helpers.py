"""Helpers of the fuzz tests (the fixture that counts their cases is in fuzz_fixtures)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Deterministic (derandomize: the same cases on every run), no example database, no per-case
# deadline (2 shared CPU cores); each test states its own max_examples.
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
