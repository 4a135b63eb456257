"""API keys, isolation between applications, lockout, rate limits, and no secrets in logs."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from faceauth import logs
from faceauth_auth import apikeys
from faceauth_auth.db import Database
from tests.auth_helpers import ALICE, BOB, Application, Headers, Photo, body, error_code, upload

pytest_plugins = ["tests.auth_fixtures"]


def test_every_api_endpoint_needs_a_valid_key(http: FlaskClient, auth_app: Flask) -> None:
    public = {"/healthz", "/readyz", "/.well-known/jwks.json", "/openapi.json", "/docs",
              "/static/<path:filename>"}
    for rule in auth_app.url_map.iter_rules():
        if rule.rule in public:
            continue
        path = rule.rule.replace("<user_id>", "alice").replace("<face_id>", "00000000-0000-0000-0000-000000000000")
        for method in rule.methods - {"HEAD", "OPTIONS"}:  # type: ignore[operator]
            missing = http.open(path, method=method)
            wrong = http.open(path, method=method, headers={"X-API-Key": "fa_" + "x" * 43})
            assert (missing.status_code, error_code(missing)) == (401, "missing_api_key"), path
            assert (wrong.status_code, error_code(wrong)) == (401, "invalid_api_key"), path
    for path in public - {"/static/<path:filename>"}:
        assert http.get(path).status_code in (200, 503), path
    assert http.get("/metrics").status_code == 404  # on the metrics port only (test_auth_ops)


def test_a_key_works_as_bearer_or_x_api_key_and_is_stored_hashed(http: FlaskClient, auth_db: Database) -> None:
    with auth_db.transaction() as session:
        key_id, key = apikeys.create(session, "hashed-keys")
    assert http.get("/v1/users/nobody", headers={"Authorization": f"Bearer {key}"}).status_code == 404
    assert http.get("/v1/users/nobody", headers={"X-API-Key": key}).status_code == 404
    with auth_db.engine.connect() as connection:
        rows = connection.execute(sa.text("select * from api_keys where key_id = :id"), {"id": key_id}).mappings().all()
    assert len(rows) == 1 and rows[0]["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(dict(rows[0]))
    with auth_db.transaction() as session:
        assert apikeys.revoke(session, key_id)
    revoked = http.get("/v1/users/nobody", headers={"X-API-Key": key})
    assert revoked.status_code == 401 and error_code(revoked) == "invalid_api_key"


def test_applications_never_see_each_others_users(http: FlaskClient, new_application: Callable[[], Application],
                                                  photo: Photo) -> None:
    first, second = new_application().headers, new_application().headers
    assert http.post("/auth/face-register", headers=first, **upload("alice", photo(ALICE, 2))).status_code == 201
    assert http.get("/v1/users/alice", headers=second).status_code == 404
    assert http.get("/v1/users/alice/faces", headers=second).status_code == 404
    assert http.delete("/v1/users/alice", headers=second).status_code == 404
    assert http.post("/auth/face-login", headers=second, **upload("alice", photo(ALICE, 3))).status_code == 401
    identified = body(http.post("/auth/face-identify", headers=second, **upload(None, photo(ALICE, 3))))
    assert identified["match"] is False and identified["user_id"] is None
    # The same user id in the second application is another person.
    assert http.post("/auth/face-register", headers=second, **upload("alice", photo(BOB, 1))).status_code == 201
    assert http.post("/auth/face-login", headers=first, **upload("alice", photo(ALICE, 3))).status_code == 200
    assert http.post("/auth/face-login", headers=second, **upload("alice", photo(BOB, 2))).status_code == 200


def test_lockout_after_repeated_failures_lifts_after_the_window(make_app: Callable[..., Flask], headers: Headers,
                                                                photo: Photo) -> None:
    http = make_app(lockout_max_failures=3, lockout_window=3.0).test_client()
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    for user in ("alice", "ghost"):  # unknown users lock the same way, so ids cannot be probed
        for _ in range(3):
            assert http.post("/auth/face-login", headers=headers, **upload(user, photo(BOB, 1))).status_code == 401
    locked = http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3)))
    assert locked.status_code == 429 and error_code(locked) == "too_many_attempts"
    assert 1 <= int(locked.headers["Retry-After"]) <= 3
    assert error_code(http.post("/auth/face-login", headers=headers, **upload("ghost", photo(BOB, 1)))) == \
        "too_many_attempts"
    time.sleep(int(locked.headers["Retry-After"]) + 0.2)
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 200


def test_rate_limit_per_application(make_app: Callable[..., Flask], new_application: Callable[[], Application]) -> None:
    http = make_app(rate_limit="3 per minute").test_client()
    busy, quiet = new_application().headers, new_application().headers
    for _ in range(3):
        assert http.get("/v1/users/nobody", headers=busy).status_code == 404
    limited = http.get("/v1/users/nobody", headers=busy)
    assert limited.status_code == 429 and error_code(limited) == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 61  # the window is 60 s, rounded up
    assert http.get("/v1/users/nobody", headers=quiet).status_code == 404
    assert all(http.get("/healthz").status_code == 200 for _ in range(5))


def test_bootstrap_key_is_created_once(make_app: Callable[..., Flask], auth_db: Database) -> None:
    key = "dev-bootstrap-key-for-the-tests-0123456789"
    for _ in range(2):
        http = make_app(bootstrap_api_key=key).test_client()
        assert http.get("/v1/users/nobody", headers={"X-API-Key": key}).status_code == 404
    with auth_db.engine.connect() as connection:
        count = connection.execute(sa.text("select count(*) from api_keys where key_id = :id"),
                                   {"id": apikeys.key_id_of(key)}).scalar_one()
    assert count == 1


def test_logs_carry_no_secrets(http: FlaskClient, application: Application, photo: Photo,
                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    http.post("/auth/face-register", headers=application.headers, **upload("alice", photo(ALICE, 2)))
    token = body(http.post("/auth/face-login", headers=application.headers,
                           **upload("alice", photo(ALICE, 3))))["access_token"]
    key = application.headers["Authorization"].removeprefix("Bearer ")
    formatter = logs.JsonFormatter("auth")
    lines = [formatter.format(record) for record in caplog.records]
    assert any('"http request"' in line for line in lines)
    assert not any(key in line or token in line for line in lines)
