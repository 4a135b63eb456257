"""API keys, isolation between applications, lockout, rate limits, and no secrets in logs."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from faceauth import logs
from faceauth.grpc.launch import free_port
from faceauth_auth import apikeys, ratelimit
from faceauth_auth.config import Settings
from faceauth_auth.db import Database
from faceauth_auth.launch import AuthProcess
from tests.auth_helpers import (
    ALICE,
    BOB,
    Application,
    Headers,
    ModelServices,
    Photo,
    body,
    error_code,
    redis_server,
    upload,
)

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


def test_failed_authentications_are_limited_per_address_before_the_key_is_checked(
        make_app: Callable[..., Flask], application: Application) -> None:
    """Key guessing: 20 wrong keys a minute from one address (the default), then 429 for everything that needs a
    key, the right key too, so a right guess looks like a wrong one; other addresses are not affected."""
    assert Settings().auth_failure_rate_limit == "20 per minute"
    http = make_app(auth_failure_rate_limit="20 per minute").test_client()
    guesser, other = {"REMOTE_ADDR": "203.0.113.7"}, {"REMOTE_ADDR": "198.51.100.9"}
    answers = []
    for attempt in range(30):
        guess = {"X-API-Key": f"fa_{attempt:043d}"} if attempt % 3 else {}  # wrong keys and missing ones
        answers.append(http.get("/v1/users/nobody", headers=guess, environ_base=guesser))
    assert [answer.status_code for answer in answers] == [401] * 20 + [429] * 10
    assert {error_code(answer) for answer in answers[20:]} == {"rate_limited"}
    assert all(1 <= int(answer.headers["Retry-After"]) <= 60 for answer in answers[20:])
    right = http.get("/v1/users/nobody", headers=application.headers, environ_base=guesser)
    assert right.status_code == 429 and error_code(right) == "rate_limited"
    assert http.get("/v1/users/nobody", headers={"X-API-Key": "fa_wrong"}, environ_base=other).status_code == 401
    assert http.get("/v1/users/nobody", headers=application.headers, environ_base=other).status_code == 404
    assert http.get("/healthz", environ_base=guesser).status_code == 200  # public endpoints are never limited


def test_workers_share_the_failed_authentication_count_through_redis(
        tmp_path: Path, model_services: ModelServices, jwt_dir: Path, template_key_file: Path) -> None:
    """Two gunicorn workers on a password-protected Redis: the 20 failures a minute are counted once for the
    address, whichever worker answers (each would allow 20 with memory://)."""
    port, password = free_port(), uuid.uuid4().hex
    args = ["--port", str(port), "--bind", "127.0.0.1", "--requirepass", password, "--save", "", "--appendonly", "no"]
    env = {"PYTHONPATH": os.pathsep.join(sys.path), "FACEAUTH_WORKERS": "2",
           "FACEAUTH_RATE_LIMIT_STORAGE_URI": f"redis://:{password}@127.0.0.1:{port}/0",
           "FACEAUTH_RATE_LIMIT_ALLOW_PER_WORKER": "false",
           "FACEAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/auth.db",
           "FACEAUTH_JWT_CURRENT_KEY_FILE": str(jwt_dir / "current.pem"),
           "FACEAUTH_JWT_NEXT_KEY_FILE": str(jwt_dir / "next.pem"),
           "FACEAUTH_TEMPLATE_KEY_FILE": str(template_key_file),
           "FACEAUTH_DETECTOR_TARGET": model_services.detector.target,
           "FACEAUTH_EMBEDDER_TARGET": model_services.embedder.target,
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    with redis_server(args, port), (tmp_path / "gunicorn.log").open("wb") as log, AuthProcess(env, log) as server:
        assert len(server.workers()) == 2
        statuses = []
        for attempt in range(30):  # a connection each: the kernel hands them to either worker
            request = urllib.request.Request(f"{server.url}/v1/users/nobody",
                                             headers={"X-API-Key": f"fa_{attempt:043d}", "Connection": "close"})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            statuses.append(refused.value.code)
        stored = redis.Redis(port=port, password=password)
        counts = {key.decode(): int(stored.get(key) or 0) for key in stored.scan_iter("*failed-authentication*")}
    assert statuses == [401] * 20 + [429] * 10
    assert [count for key, count in counts.items() if "address:127.0.0.1" in key] == [20], counts


def test_several_workers_must_share_the_rate_limit_storage(tmp_path: Path, template_key_file: Path) -> None:
    """memory:// counts per worker process, so each of N workers would allow N times the limits: gunicorn refuses
    to start that unless told it is development; one worker, or Redis/Memcached, is fine."""
    with pytest.raises(ratelimit.RateLimitStorageError, match="FACEAUTH_RATE_LIMIT_STORAGE_URI"):
        ratelimit.check_storage("memory://", 2, allow_per_worker=False)
    ratelimit.check_storage("memory://", 2, allow_per_worker=True)
    ratelimit.check_storage("memory://", 1, allow_per_worker=False)
    ratelimit.check_storage("redis://redis:6379", 4, allow_per_worker=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "FACEAUTH_WORKERS": "2",
           "FACEAUTH_RATE_LIMIT_STORAGE_URI": "memory://", "FACEAUTH_TEMPLATE_KEY_FILE": str(template_key_file),
           "FACEAUTH_DATABASE_URL": f"sqlite:///{tmp_path}/auth.db", "FACEAUTH_BIND_ADDRESS": "127.0.0.1",
           "FACEAUTH_PORT": str(free_port()), "FACEAUTH_METRICS_PORT": str(free_port()),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    env.pop("FACEAUTH_RATE_LIMIT_ALLOW_PER_WORKER", None)
    started = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "python:faceauth_auth.gunicorn_conf"],
                             env=env, capture_output=True, text=True, timeout=60, check=False)
    assert started.returncode == 1
    assert "memory://, which counts in each worker process, but 2 workers" in started.stderr
    assert not (tmp_path / "auth.db").exists()  # refused before migrating anything


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
