"""The attempt budget on the real Postgres: race-free lockout, escalation to a permanent lock an operator lifts,
verify and presentation attacks spending it, the per-application breaker, and proof to add a face."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from flask import Flask

from faceauth_auth import liveness
from faceauth_auth.api import auth as auth_api
from faceauth_auth.db import Database
from tests.auth_helpers import (
    ALICE,
    BOB,
    STRANGER,
    Application,
    Photo,
    body,
    error_code,
    http_upload,
    scraped,
    serving,
    upload,
)

pytest_plugins = ["tests.auth_fixtures"]

PARALLEL = 32


def _decided(db: Database, application: Application, user_id: str) -> list[bool | None]:
    with db.engine.connect() as connection:
        return [row[0] for row in connection.execute(sa.text(
            "select t.succeeded from login_attempts t join applications a on a.id = t.application_id "
            "where a.name = :app and t.external_user_id = :user order by t.id"),
            {"app": application.name, "user": user_id})]


def test_parallel_impostor_logins_get_at_most_the_allowed_decisions(
        make_app: Callable[..., Flask], application: Application, auth_db: Database, photo: Photo) -> None:
    """Check and record used to be separate transactions: 32 logins at once were all decided. Now each request
    reserves an attempt under the user id's row lock before the models run."""
    app = make_app(lockout_max_failures=5, max_inflight=PARALLEL, admission_wait=30.0)
    assert app.test_client().post("/auth/face-register", headers=application.headers,
                                  **upload("alice", photo(ALICE, 2))).status_code == 201
    impostor = photo(BOB, 1)

    def attempt(_: int) -> int:
        request = http_upload(f"{url}/auth/face-login", application.headers, "alice", impostor)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as refused:
            return int(refused.code)

    with serving(app) as url, ThreadPoolExecutor(PARALLEL) as pool:
        statuses = list(pool.map(attempt, range(PARALLEL)))
    decided = [outcome for outcome in _decided(auth_db, application, "alice") if outcome is not None]
    assert statuses.count(401) == len(decided) <= 5 and decided == [False] * len(decided)
    assert statuses.count(429) == PARALLEL - len(decided) and 200 not in statuses
    assert None not in _decided(auth_db, application, "alice")  # no reservation left behind


def test_lockouts_grow_then_become_permanent_until_an_operator_unlocks(
        make_app: Callable[..., Flask], application: Application, photo: Photo) -> None:
    http = make_app(lockout_max_failures=2, lockout_window=1.0, lockout_permanent_after=3).test_client()
    headers = application.headers
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    waits = []
    for _ in range(2):
        for _ in range(2):
            assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(BOB, 1))).status_code == 401
        locked = http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3)))
        assert locked.status_code == 429 and error_code(locked) == "too_many_attempts"
        lock = body(http.get("/v1/users/alice/lock", headers=headers))
        assert lock["locked"] and not lock["permanent"]
        waits.append(lock["locked_until"])
        time.sleep(2 ** len(waits) - 1 + 0.3)  # the first lockout 1 s, the second 2 s
    for _ in range(2):
        assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(BOB, 1))).status_code == 401
    time.sleep(4.5)  # longer than a fourth temporary lockout would be
    refused = http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3)))
    assert refused.status_code == 423 and error_code(refused) == "account_locked"
    assert body(http.get("/v1/users/alice/lock", headers=headers))["permanent"] is True
    assert http.delete("/v1/users/alice/lock", headers=headers).status_code == 204
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 200
    events = body(http.get("/v1/audit?user_id=alice", headers=headers))["events"]
    kinds = [event["event"] for event in events]
    assert kinds.count("account_locked") == 3 and "account_unlocked" in kinds


def test_verify_spends_the_budget_and_answers_coarsely(make_app: Callable[..., Flask], application: Application,
                                                       photo: Photo) -> None:
    http = make_app(lockout_max_failures=3).test_client()
    headers = application.headers
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    genuine = body(http.post("/auth/face-verify", headers=headers, **upload("alice", photo(ALICE, 3))))
    assert genuine["match"] is True and round(genuine["confidence"] * 10) == genuine["confidence"] * 10
    for _ in range(3):
        answer = body(http.post("/auth/face-verify", headers=headers, **upload("alice", photo(BOB, 1))))
        assert answer == {"match": False, "confidence": 0.0}
    locked = http.post("/auth/face-verify", headers=headers, **upload("alice", photo(ALICE, 3)))
    assert locked.status_code == 429 and error_code(locked) == "too_many_attempts"
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 429


def test_a_refused_presentation_attack_answers_like_a_mismatch_and_counts(
        make_app: Callable[..., Flask], application: Application, photo: Photo,
        monkeypatch: pytest.MonkeyPatch) -> None:
    http = make_app(lockout_max_failures=2).test_client()
    headers = application.headers
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    mismatch = http.post("/auth/face-login", headers=headers, **upload("alice", photo(BOB, 1)))

    def spoofed(*_: object) -> None:
        raise liveness.PresentationAttackError(liveness.Decision.LOGIN, "test: a printed photo")

    monkeypatch.setattr(auth_api.liveness, "judge", spoofed)
    attack = http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3)))  # the right face
    assert attack.status_code == mismatch.status_code == 401 and body(attack) == body(mismatch)
    monkeypatch.undo()
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 429
    outcomes = [event["outcome"] for event in body(http.get("/v1/audit?user_id=alice&event=login",
                                                            headers=headers))["events"]]
    assert outcomes == ["spoof", "mismatch"]  # newest first


def test_spraying_one_try_per_user_trips_the_application_breaker(
        make_app: Callable[..., Flask], application: Application, photo: Photo) -> None:
    """No user id fails twice, so no lockout; the application's failure rate opens its breaker."""
    app = make_app(breaker_max_failures=4, breaker_window=60.0)
    http = app.test_client()
    headers = application.headers
    for user in ("u1", "u2", "u3", "u4"):
        assert http.post("/auth/face-login", headers=headers, **upload(user, photo(*STRANGER))).status_code == 401
    time.sleep(1.1)  # the verdict is re-read once a second
    suspended = http.post("/auth/face-login", headers=headers, **upload("u5", photo(*STRANGER)))
    assert suspended.status_code == 503 and error_code(suspended) == "login_suspended"
    assert int(suspended.headers["Retry-After"]) == 60
    refusals = [sample for sample in scraped(http) if sample.name == "faceauth_breaker_refusals_total"]
    assert any(sample.labels["application"] == application.name and sample.value >= 1 for sample in refusals)


def test_adding_a_face_to_an_existing_user_needs_proof(make_app: Callable[..., Flask], application: Application,
                                                       photo: Photo) -> None:
    http = make_app().test_client()
    headers = application.headers
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    planted = http.post("/auth/face-register", headers=headers, **upload("alice", photo(BOB, 1)))
    assert planted.status_code == 403 and error_code(planted) == "proof_required"
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 201
    # A token of the user from a face login is proof too; another user's token is not.
    assert http.post("/auth/face-register", headers=headers, **upload("bob", photo(BOB, 2))).status_code == 201
    bob_token = body(http.post("/auth/face-login", headers=headers, **upload("bob", photo(BOB, 3))))["access_token"]
    with_bob = {**headers, auth_api.PROOF_HEADER: bob_token}
    assert http.post("/auth/face-register", headers=with_bob, **upload("alice", photo(BOB, 1))).status_code == 403
    assert http.post("/auth/face-register", headers=with_bob, **upload("bob", photo(BOB, 5))).status_code == 201
    faces = body(http.get("/v1/users/alice/faces", headers=headers))["faces"]
    assert len(faces) == 2
    refusals = [event for event in body(http.get("/v1/audit?user_id=alice&event=enrolment",
                                                 headers=headers))["events"] if event["outcome"] == "refused"]
    assert len(refusals) == 2 and json.dumps(refusals).count("no proof") == 2
