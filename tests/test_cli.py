"""The ``faceauth`` command line against a served auth app and the real model services."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceauth_auth.cli import main
from tests.auth_helpers import Application

pytest_plugins = ["tests.auth_fixtures"]


def _photo(lfw: Path, name: str, index: int) -> str:
    return str(lfw / "images" / name / f"{name}_{index:04d}.jpg")


def test_enrol_login_and_erase_from_the_command_line(served: str, application: Application, lfw: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    key = application.headers["Authorization"].removeprefix("Bearer ")
    common = ["--url", served, "--api-key", key]

    assert main([*common, "enrol", "serena", _photo(lfw, "Serena_Williams", 1)]) == 0
    assert json.loads(capsys.readouterr().out)["user_id"] == "serena"

    assert main([*common, "login", "serena", _photo(lfw, "Serena_Williams", 2)]) == 0
    assert json.loads(capsys.readouterr().out)["token_type"] == "Bearer"

    assert main([*common, "login", "serena", _photo(lfw, "Andre_Agassi", 1)]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "face_mismatch"

    assert main([*common, "users", "faces", "serena"]) == 0
    capsys.readouterr()
    assert main([*common, "users", "delete", "serena"]) == 0
    capsys.readouterr()
    assert main([*common, "users", "show", "serena"]) == 1


def test_a_missing_api_key_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--api-key", "", "users", "show", "anyone"]) == 2
    assert "API key" in capsys.readouterr().err


def test_admin_commands_pass_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as helped:
        main(["attempts", "--help"])
    assert helped.value.code == 0 and "prune" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["users", "show", "anyone", "--no-such-option"])
    assert main(["keys", "generate-jwt", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "current.pem").exists() and (tmp_path / "next.pem").exists()
    assert main(["keys", "generate-template-key", "--out", str(tmp_path / "template.key")]) == 0
