"""Environment reads: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

import pytest

from faceauth.config import env_bool, env_choice, env_float, env_int


def test_values_parse_and_empty_means_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEAUTH_X_INT", "12")
    monkeypatch.setenv("FACEAUTH_X_FLOAT", "0.25")
    monkeypatch.setenv("FACEAUTH_X_BOOL", "Off")
    monkeypatch.setenv("FACEAUTH_X_EMPTY", "")
    assert env_int("FACEAUTH_X_INT", 1) == 12
    assert env_float("FACEAUTH_X_FLOAT", 1.0) == 0.25
    assert env_bool("FACEAUTH_X_BOOL", True) is False
    assert env_int("FACEAUTH_X_EMPTY", 7) == 7
    assert env_bool("FACEAUTH_X_UNSET", True) is True


@pytest.mark.parametrize(("reader", "raw"), [(env_int, "1.5"), (env_float, "fast"), (env_bool, "maybe")])
def test_malformed_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, reader: object, raw: str) -> None:
    monkeypatch.setenv("FACEAUTH_X_BAD", raw)
    with pytest.raises(ValueError, match="FACEAUTH_X_BAD"):
        reader("FACEAUTH_X_BAD", 0)  # type: ignore[operator]


def test_a_choice_is_one_of_its_values(monkeypatch: pytest.MonkeyPatch) -> None:
    policies = ("off", "report", "enforce")
    monkeypatch.setenv("FACEAUTH_X_CHOICE", " Enforce ")
    assert env_choice("FACEAUTH_X_CHOICE", "report", policies) == "enforce"
    assert env_choice("FACEAUTH_X_UNSET", "report", policies) == "report"
    monkeypatch.setenv("FACEAUTH_X_CHOICE", "strict")
    with pytest.raises(ValueError, match="FACEAUTH_X_CHOICE must be one of off, report, enforce"):
        env_choice("FACEAUTH_X_CHOICE", "report", policies)
