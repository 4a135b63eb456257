"""API keys, isolation between applications, lockout, rate limits, and no secrets in logs."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from faceauth import logs
from faceauth.grpc.launch import free_port
from faceauth_auth import __main__ as cli
from faceauth_auth import apikeys, authn, ratelimit
from faceauth_auth.config import Settings
from faceauth_auth.db import Database, create_engine
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
    gunicorn_env,
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


def test_a_key_works_as_bearer_or_x_api_key_and_is_stored_hashed(http: FlaskClient, auth_db: Database,
                                                                  key_hasher: apikeys.KeyHasher,
                                                                  api_key_pepper_file: Path) -> None:
    with auth_db.transaction() as session:
        key_id, key = apikeys.create(session, "hashed-keys", hasher=key_hasher)
    assert http.get("/v1/users/nobody", headers={"Authorization": f"Bearer {key}"}).status_code == 404
    assert http.get("/v1/users/nobody", headers={"X-API-Key": key}).status_code == 404
    with auth_db.engine.connect() as connection:
        rows = connection.execute(sa.text("select * from api_keys where key_id = :id"), {"id": key_id}).mappings().all()
    # Keyed: HMAC-SHA256 under the pepper, so the row alone (a database leak) cannot confirm a guessed key.
    pepper = apikeys.load_pepper(api_key_pepper_file)
    assert len(rows) == 1 and rows[0]["key_hash"] == hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()
    assert rows[0]["key_hash_scheme"] == "hmac-sha256"
    unkeyed = hashlib.sha256(key.encode()).hexdigest()
    assert unkeyed not in str(dict(rows[0])) and unkeyed[:16] != key_id
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
        tmp_path: Path, model_services: ModelServices, jwt_dir: Path, template_key_file: Path,
        api_key_pepper_file: Path) -> None:
    """Two gunicorn workers on a password-protected Redis: the 20 failures a minute are counted once for the
    address, whichever worker answers (each would allow 20 with memory://)."""
    port, password = free_port(), uuid.uuid4().hex
    args = ["--port", str(port), "--bind", "127.0.0.1", "--requirepass", password, "--save", "", "--appendonly", "no"]
    env = {**gunicorn_env(model_services, jwt_dir, template_key_file, api_key_pepper_file, WORKERS="2",
                          RATE_LIMIT_STORAGE_URI=f"redis://:{password}@127.0.0.1:{port}/0",
                          RATE_LIMIT_ALLOW_PER_WORKER="false", DATABASE_URL=f"sqlite:///{tmp_path}/auth.db"),
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


def test_bootstrap_key_is_created_once(make_app: Callable[..., Flask], auth_db: Database,
                                       key_hasher: apikeys.KeyHasher) -> None:
    key = "dev-bootstrap-key-for-the-tests-0123456789"
    for _ in range(2):
        http = make_app(bootstrap_api_key=key).test_client()
        assert http.get("/v1/users/nobody", headers={"X-API-Key": key}).status_code == 404
    with auth_db.engine.connect() as connection:
        count = connection.execute(sa.text("select count(*) from api_keys where key_id = :id"),
                                   {"id": key_hasher.key_id(key)}).scalar_one()
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


def test_a_key_stored_as_plain_sha256_still_works_and_is_rehashed_on_first_use(
        http: FlaskClient, auth_db: Database, key_hasher: apikeys.KeyHasher) -> None:
    """Rows from before migration 0008 hold the unkeyed SHA-256; their first successful use rewrites it."""
    key = apikeys.KEY_PREFIX + "legacy-" + hashlib.sha256(str(time.time()).encode()).hexdigest()
    unkeyed = hashlib.sha256(key.encode()).hexdigest()
    with auth_db.transaction() as session:
        application_id = session.scalar(sa.text("insert into applications (name, operating_point, created_at) "
                                                "values (:name, 'default', now()) returning id"),
                                        {"name": f"legacy-{unkeyed[:8]}"})
        session.execute(sa.text("insert into api_keys (application_id, key_id, key_hash, key_hash_scheme, scopes, "
                                "created_at) values (:app, :id, :hash, 'sha256', 'admin enrol login', now())"),
                        {"app": application_id, "id": unkeyed[:16], "hash": unkeyed})

    def stored() -> tuple[str, str]:
        with auth_db.engine.connect() as connection:
            row = connection.execute(sa.text("select key_hash, key_hash_scheme from api_keys where key_id = :id"),
                                     {"id": unkeyed[:16]}).one()
        return row[0], row[1]

    wrong = http.get("/v1/users/nobody", headers={"X-API-Key": key + "x"})
    assert wrong.status_code == 401 and stored() == (unkeyed, "sha256")  # a failed attempt changes nothing
    assert http.get("/v1/users/nobody", headers={"X-API-Key": key}).status_code == 404
    assert stored() == (key_hasher.digest(key), "hmac-sha256")  # the same id, now keyed
    assert http.get("/v1/users/nobody", headers={"X-API-Key": key}).status_code == 404


def test_scopes_limit_what_a_key_may_call(http: FlaskClient, auth_db: Database, key_hasher: apikeys.KeyHasher,
                                          photo: Photo) -> None:
    keys: dict[str, Headers] = {}
    with auth_db.transaction() as session:
        for scopes in ("enrol", "login", "admin"):
            keys[scopes] = {"X-API-Key": apikeys.create(session, f"scoped-{time.time()}", hasher=key_hasher,
                                                        scopes={scopes})[1]}
    # Each key reaches its own endpoints; a refused call is 403 insufficient_scope, before any work.
    image = photo(ALICE, 3)
    calls: dict[str, list[tuple[str, str, str | None]]] = {
        "enrol": [("POST", "/auth/face-register", "alice")],
        "login": [("POST", "/auth/face-login", "alice"), ("POST", "/auth/face-verify", "alice"),
                  ("POST", "/auth/face-identify", None), ("POST", "/v1/faces/detect", None),
                  ("POST", "/v1/challenges", "alice")],
        "admin": [("GET", "/v1/users/alice", ""), ("GET", "/v1/users/alice/faces", ""), ("GET", "/v1/audit", ""),
                  ("DELETE", "/v1/users/alice/faces/00000000-0000-0000-0000-000000000000", ""),
                  ("DELETE", "/v1/users/alice", "")],
    }
    for scope, endpoints in calls.items():
        for method, path, user in endpoints:
            for holder, headers in keys.items():
                request = upload(user, image) if user != "" else {}  # a fresh upload each time
                response = http.open(path, method=method, headers=headers, **request)
                if holder == scope:
                    assert response.status_code != 403, (holder, path)
                else:
                    assert (response.status_code, error_code(response)) == (403, "insufficient_scope"), (holder, path)
                    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_every_non_public_endpoint_has_a_scope(auth_app: Flask, make_app: Callable[..., Flask],
                                               headers: Headers) -> None:
    private = {endpoint for endpoint, view in auth_app.view_functions.items()
               if endpoint != "static" and not getattr(view, "faceauth_public", False)}
    assert private == set(authn.ENDPOINT_SCOPES), "give each new endpoint its scope in authn.ENDPOINT_SCOPES"
    assert set(authn.ENDPOINT_SCOPES.values()) <= apikeys.ALL_SCOPES
    # An endpoint left out of the map is refused to every key, even one holding all scopes.
    app = make_app()
    app.add_url_rule("/v1/unmapped", "unmapped", lambda: "reached")
    refused = app.test_client().get("/v1/unmapped", headers=headers)
    assert (refused.status_code, error_code(refused)) == (403, "insufficient_scope")


def test_an_expired_key_is_refused(http: FlaskClient, auth_db: Database, key_hasher: apikeys.KeyHasher) -> None:
    with auth_db.transaction() as session:
        key_id, key = apikeys.create(session, f"expiring-{time.time()}", hasher=key_hasher,
                                     expires_in=timedelta(days=1))
    assert http.get("/v1/users/nobody", headers={"X-API-Key": key}).status_code == 404
    with auth_db.engine.begin() as connection:
        connection.execute(sa.text("update api_keys set expires_at = now() - interval '1 second' where key_id = :id"),
                           {"id": key_id})
    expired = http.get("/v1/users/nobody", headers={"X-API-Key": key})
    assert (expired.status_code, error_code(expired)) == (401, "invalid_api_key")
    with auth_db.transaction() as session:
        assert apikeys.authenticate(session, key, key_hasher, now=datetime.now(UTC) - timedelta(days=1)) is not None
    with pytest.raises(ValueError, match="positive"), auth_db.transaction() as session:
        apikeys.create(session, "never-valid", hasher=key_hasher, expires_in=timedelta(0))


def test_no_pepper_no_start(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    with pytest.raises(apikeys.PepperError, match="FACEAUTH_API_KEY_PEPPER_FILE"):
        make_app(api_key_pepper_file=None)
    (tmp_path / "short").write_text("c2hvcnQ=\n")
    with pytest.raises(apikeys.PepperError, match="at least 32 bytes"):
        make_app(api_key_pepper_file=tmp_path / "short")
    with pytest.raises(apikeys.PepperError, match="cannot read"):
        make_app(api_key_pepper_file=tmp_path / "missing")


def test_keys_create_takes_scopes_and_a_lifetime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/keys.db"
    monkeypatch.setenv("FACEAUTH_DATABASE_URL", url)
    monkeypatch.setattr(cli.logs, "configure", lambda *_: None)
    assert cli.main(["keys", "create", "--app", "kiosk"]) == 1  # no pepper: no key
    assert "FACEAUTH_API_KEY_PEPPER_FILE" in capsys.readouterr().err
    pepper = tmp_path / "pepper"
    assert cli.main(["keys", "generate-api-key-pepper", "--out", str(pepper)]) == 0
    assert cli.main(["keys", "generate-api-key-pepper", "--out", str(pepper)]) == 1  # never overwritten
    assert pepper.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("FACEAUTH_API_KEY_PEPPER_FILE", str(pepper))
    capsys.readouterr()
    assert cli.main(["keys", "create", "--app", "kiosk", "--scopes", "login,enrol", "--expires-in-days", "30"]) == 0
    printed = capsys.readouterr().out
    found = re.search(r"key id:\s+(\S+)\nscopes:\s+enrol login\nexpires:\s+(\S+)\napi key:\s+(\S+)", printed)
    assert found is not None, printed
    key_id, expires, key = found.groups()
    assert abs(datetime.fromisoformat(expires) - datetime.now(UTC) - timedelta(days=30)) < timedelta(minutes=1)
    db = Database(create_engine(url))
    with db.transaction() as session:
        client = apikeys.authenticate(session, key, apikeys.KeyHasher(apikeys.load_pepper(pepper)))
        assert client is not None and client.key_id == key_id and client.scopes == {"enrol", "login"}
        assert apikeys.authenticate(session, key, apikeys.KeyHasher(apikeys.load_pepper(pepper)),
                                    now=datetime.now(UTC) + timedelta(days=31)) is None
    for wrong in (["--scopes", "login,root"], ["--scopes", ""], ["--expires-in-days", "0"]):
        with pytest.raises(SystemExit):
            cli.main(["keys", "create", "--app", "kiosk", *wrong])
