"""Helpers, values files, promtool tests and CRD schemas for the Helm chart checks (tests/test_helm_*.py)."""
