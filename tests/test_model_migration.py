"""Upgrading the embedder without re-enrolment, end to end on the real Postgres and real model servers.

Users enrol under dlib-resnet; the embedder switches to mobilefacenet with dlib-resnet kept for a
migration window, where a login decided by dlib-resnet also enrols the face under mobilefacenet;
then dlib-resnet is retired and migrated users still log in, while an impostor never got a template.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask

from faceauth.grpc.launch import ServiceProcess
from faceauth_auth import __main__ as cli
from faceauth_auth.db import Database
from faceauth_auth.models import AuditEvent
from faceauth_auth.repositories import users
from tests.auth_helpers import ALICE, BOB, Application, ModelServices, Photo, application_id, body, running, upload

pytest_plugins = ["tests.auth_fixtures"]


@dataclass
class Embedders:
    before: ServiceProcess  # dlib-resnet alone, as before the upgrade
    window: ServiceProcess  # mobilefacenet, with dlib-resnet kept for the migration window


@pytest.fixture(scope="module")
def embedders(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedders]:
    env = {"FACEAUTH_MODEL_DIR": str(model_dir), "PYTHONPATH": os.pathsep.join(sys.path), "TF_CPP_MIN_LOG_LEVEL": "2",
           "FACEAUTH_INTRA_OP_THREADS": "1", "FACEAUTH_MAX_BATCH_SIZE": "2"}
    logs = tmp_path_factory.mktemp("migration")
    with (logs / "before.log").open("wb") as before_log, (logs / "window.log").open("wb") as window_log:
        started = Embedders(
            ServiceProcess("faceauth_embedder", {**env, "FACEAUTH_EMBEDDER_MODEL": "dlib-resnet"}, before_log),
            ServiceProcess("faceauth_embedder", {**env, "FACEAUTH_EMBEDDER_MODEL": "mobilefacenet",
                                                 "FACEAUTH_EMBEDDER_LEGACY_MODELS": "dlib-resnet"}, window_log))
        with running(started.before, started.window):
            yield started


def _models_of(db: Database, application: Application, user_id: str) -> set[str]:
    with db.transaction() as session:
        user = users.find(session, application_id(db, application), user_id)
        return {model.name for model in users.template_models(session, user)} if user else set()


def _status(application: Application, embedder: ServiceProcess, database_url: str,
            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    """``faceauth templates migration-status`` for the application, against ``embedder``."""
    monkeypatch.setenv("FACEAUTH_DATABASE_URL", database_url)
    monkeypatch.setenv("FACEAUTH_EMBEDDER_TARGET", embedder.target)
    monkeypatch.setattr(cli.logs, "configure", lambda *_: None)  # keep pytest's logging as it is
    capsys.readouterr()
    assert cli.main(["templates", "migration-status"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [row] = [row for row in rows if row["application"] == application.name]
    return {key: row[key] for key in ("users", "migrated", "waiting", "stranded")}


def test_an_embedder_upgrade_keeps_every_user_enrolled(
        make_app: Callable[..., Flask], embedders: Embedders, model_services: ModelServices,
        application: Application, auth_db: Database, auth_database_url: str, photo: Photo,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    headers = application.headers
    before = make_app(embedder_target=embedders.before.target).test_client()
    for user_id, face in (("alice", photo(ALICE, 2)), ("bob", photo(BOB, 1))):
        assert before.post("/auth/face-register", headers=headers, **upload(user_id, face)).status_code == 201
    assert _models_of(auth_db, application, "alice") == {"dlib-resnet"}

    window = make_app(embedder_target=embedders.window.target).test_client()
    assert _status(application, embedders.window, auth_database_url, monkeypatch, capsys) == {
        "users": 2, "migrated": 0, "waiting": 2, "stranded": 0}
    # An impostor is refused under the legacy model and gets no template of the new one.
    assert window.post("/auth/face-login", headers=headers, **upload("bob", photo(ALICE, 3))).status_code == 401
    assert body(window.post("/auth/face-verify", headers=headers, **upload("bob", photo(ALICE, 4))))["match"] is False
    assert _models_of(auth_db, application, "bob") == {"dlib-resnet"}
    # Bob is still found 1:N through the legacy model's gallery.
    assert body(window.post("/auth/face-identify", headers=headers, **upload(None, photo(BOB, 2))))["user_id"] == "bob"

    # Alice logs in: dlib-resnet decides, and the same photo's face is enrolled under mobilefacenet (audited).
    assert window.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 200
    assert _models_of(auth_db, application, "alice") == {"dlib-resnet", "mobilefacenet"}
    with auth_db.transaction() as session:
        migrated = [event for event in session.query(AuditEvent).filter_by(external_user_id="alice",
                                                                            event="enrolment")
                    if event.detail and "automatic, migrated from dlib-resnet/1" in event.detail]
    assert len(migrated) == 1
    # A second login in the window is decided by the new model and enrols nothing more.
    assert window.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 5))).status_code == 200
    with auth_db.transaction() as session:
        alice = users.find(session, application_id(auth_db, application), "alice")
        assert alice is not None and users.template_count(session, alice) == 2
    assert _status(application, embedders.window, auth_database_url, monkeypatch, capsys) == {
        "users": 2, "migrated": 1, "waiting": 1, "stranded": 0}

    # dlib-resnet retired: the session's embedder serves mobilefacenet alone.
    after = make_app(embedder_target=model_services.embedder.target).test_client()
    assert after.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 6))).status_code == 200
    assert body(after.post("/auth/face-verify", headers=headers, **upload("alice", photo(ALICE, 4))))["match"] is True
    # Bob never came back: no usable template, so he is answered exactly like an unknown user.
    for path, status in (("/auth/face-login", 401), ("/auth/face-verify", 404)):
        bob = after.post(path, headers=headers, **upload("bob", photo(BOB, 3)))
        nobody = after.post(path, headers=headers, **upload("nobody", photo(BOB, 3)))
        assert bob.status_code == nobody.status_code == status and body(bob) == body(nobody)
    assert _status(application, model_services.embedder, auth_database_url, monkeypatch, capsys) == {
        "users": 2, "migrated": 1, "waiting": 0, "stranded": 1}
