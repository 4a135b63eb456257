"""The audit log: one event per change or decision, none for a failed request, append-only, per application."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from PIL import Image

from faceauth_auth import __main__ as cli
from faceauth_auth import apikeys, migrate
from faceauth_auth.db import Database, create_engine
from faceauth_auth.models import AuditEvent
from faceauth_auth.repositories import audit
from tests.auth_helpers import ALICE, BOB, Application, Headers, Photo, body, error_code, transformed, upload

pytest_plugins = ["tests.auth_fixtures"]


def _events(http: FlaskClient, headers: Headers, **query: Any) -> list[dict[str, Any]]:
    response = http.get("/v1/audit", headers=headers, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    events: list[dict[str, Any]] = body(response)["events"]
    return events


def _grey(photo: Photo) -> bytes:
    """A real photo painted over: no face left in it."""
    return transformed(photo(ALICE, 2), lambda image: Image.new("RGB", image.size, "grey"))


def test_every_change_and_decision_is_recorded_newest_first(http: FlaskClient, application: Application,
                                                            photo: Photo, key_hasher: apikeys.KeyHasher) -> None:
    headers = application.headers
    enrolled = body(http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))))
    assert http.post("/auth/face-register", headers=headers, **upload("bob", photo(BOB, 1))).status_code == 201
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 200
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(BOB, 2))).status_code == 401
    assert http.post("/auth/face-login", headers=headers, **upload("nobody", photo(BOB, 2))).status_code == 401
    assert body(http.post("/auth/face-verify", headers=headers, **upload("bob", photo(BOB, 2))))["match"] is True
    assert body(http.post("/auth/face-identify", headers=headers, **upload(None, photo(ALICE, 4))))["match"] is True
    assert http.delete(f"/v1/users/alice/faces/{enrolled['face_id']}", headers=headers).status_code == 204
    assert http.delete("/v1/users/bob", headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"},
                       ).status_code == 204

    events = _events(http, headers)
    summary = [(event["event"], event["user_id"], event["outcome"]) for event in events]
    assert summary == [
        ("user_deleted", "bob", "success"),
        ("face_deleted", "alice", "success"),
        ("identify", "alice", "match"),
        ("verify", "bob", "match"),
        ("login", "nobody", "mismatch"),
        ("login", "alice", "mismatch"),
        ("login", "alice", "match"),
        ("enrolment", "bob", "success"),
        ("enrolment", "alice", "success"),
        ("api_key_created", None, "success"),
    ]
    assert events[0]["client_address"] == "10.1.2.3"
    assert events[1]["detail"] == f"face {enrolled['face_id']}"
    key_id = key_hasher.key_id(headers["Authorization"].removeprefix("Bearer "))
    assert all(event["api_key_id"] == key_id and len(event["request_id"]) == 32 for event in events[:-1])
    assert events[-1]["detail"] == f"key {key_id} scopes admin enrol login"
    # Distances and liveness scores stay out of the API (no hill-climbing); the log has them.
    assert all("distance" not in event and "liveness_score" not in event for event in events)


def test_failed_requests_leave_no_event(http: FlaskClient, application: Application, photo: Photo) -> None:
    headers = application.headers
    before = _events(http, headers)
    no_face = http.post("/auth/face-register", headers=headers, **upload("alice", _grey(photo)))
    assert no_face.status_code == 422
    assert http.post("/auth/face-login", headers=headers, **upload("alice", _grey(photo))).status_code == 422
    assert http.delete("/v1/users/ghost", headers=headers).status_code == 404
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    missing_face = http.delete("/v1/users/alice/faces/00000000-0000-4000-8000-000000000000", headers=headers)
    assert missing_face.status_code == 404
    assert [event["event"] for event in _events(http, headers)] == ["enrolment"] + [e["event"] for e in before]


def test_too_many_faces_leaves_neither_face_nor_event(make_app: Callable[..., Any],
                                                      new_application: Callable[[], Application],
                                                      photo: Photo) -> None:
    http = make_app(max_templates_per_user=1).test_client()
    headers = new_application().headers
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    refused = http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 3)))
    assert refused.status_code == 409
    assert [event["event"] for event in _events(http, headers)] == ["enrolment", "api_key_created"]
    assert body(http.get("/v1/users/alice", headers=headers))["face_count"] == 1


def test_listing_filters_pages_and_keeps_applications_apart(http: FlaskClient,
                                                            new_application: Callable[[], Application],
                                                            photo: Photo) -> None:
    mine, theirs = new_application().headers, new_application().headers
    for user, person, index in (("alice", ALICE, 2), ("alice", ALICE, 3), ("bob", BOB, 1)):
        assert http.post("/auth/face-register", headers=mine, **upload(user, photo(person, index))).status_code == 201
    assert http.post("/auth/face-login", headers=mine, **upload("alice", photo(ALICE, 4))).status_code == 200

    assert [e["event"] for e in _events(http, mine, user_id="alice")] == ["login", "enrolment", "enrolment"]
    assert [e["user_id"] for e in _events(http, mine, event="enrolment")] == ["bob", "alice", "alice"]
    first = body(http.get("/v1/audit", headers=mine, query_string={"limit": 2}))
    assert [e["event"] for e in first["events"]] == ["login", "enrolment"]
    second = body(http.get("/v1/audit", headers=mine, query_string={"limit": 2, "before": first["next_before"]}))
    assert [e["event"] for e in second["events"]] == ["enrolment", "enrolment"]
    last = body(http.get("/v1/audit", headers=mine, query_string={"limit": 2, "before": second["next_before"]}))
    assert [e["event"] for e in last["events"]] == ["api_key_created"] and last["next_before"] is None
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert _events(http, mine, since=tomorrow) == []
    assert len(_events(http, mine, since="2000-01-01T00:00:00")) == 5

    # Another application sees only its own key's creation, even when asking for the same user ids.
    assert [e["event"] for e in _events(http, theirs)] == ["api_key_created"]
    assert _events(http, theirs, user_id="alice") == []


@pytest.mark.parametrize(("hops", "recorded"), [(0, "10.0.0.5"), (1, "203.0.113.9"), (2, "198.51.100.7")])
def test_the_client_address_behind_trusted_proxies(make_app: Callable[..., Any],
                                                   new_application: Callable[[], Application], photo: Photo,
                                                   hops: int, recorded: str) -> None:
    """X-Forwarded-For counts only for the proxies trusted (FACEAUTH_TRUSTED_PROXY_HOPS): a client can
    write anything at its start, so with no trusted proxy the header is ignored."""
    http = make_app(trusted_proxy_hops=hops).test_client()
    headers = {**new_application().headers, "X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
    assert http.post("/auth/face-register", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.5"},
                     **upload("alice", photo(ALICE, 2))).status_code == 201
    (enrolment, _) = _events(http, headers)
    assert enrolment["event"] == "enrolment" and enrolment["client_address"] == recorded


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "501"}, {"limit": "ten"}, {"limit": "²"},
                                   {"before": "-1"}, {"event": "party"}, {"since": "yesterday"},
                                   {"since": "0001-01-01T00:00:00+01:00"},
                                   {"user_id": "bad id!"}])
def test_listing_refuses_malformed_queries(http: FlaskClient, headers: Headers, query: dict[str, str]) -> None:
    refused = http.get("/v1/audit", headers=headers, query_string=query)
    assert refused.status_code == 400
    assert error_code(refused) in {"invalid_parameter", "invalid_user_id"}


def test_listing_needs_an_api_key(http: FlaskClient) -> None:
    assert error_code(http.get("/v1/audit")) == "missing_api_key"


def test_key_revocation_is_recorded(auth_db: Database, key_hasher: apikeys.KeyHasher) -> None:
    with auth_db.transaction() as session:
        key_id, _ = apikeys.create(session, "audit-revocation", hasher=key_hasher, scopes={"login"})
    with auth_db.transaction() as session:
        assert apikeys.revoke(session, key_id)
    with auth_db.transaction() as session:
        application_id = session.scalar(sa.text("select id from applications where name = 'audit-revocation'"))
        events = audit.events(session, audit.Filter(application_id=application_id))
    assert [(event.event, event.detail) for event in events] == [("api_key_revoked", f"key {key_id}"),
                                                                  ("api_key_created", f"key {key_id} scopes login")]


@pytest.mark.parametrize("statement", ["update audit_events set outcome = 'forged'", "delete from audit_events",
                                       "truncate audit_events"])
def test_postgres_refuses_to_change_the_log(auth_db: Database, application: Application, statement: str) -> None:
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), auth_db.engine.begin() as connection:
        connection.execute(sa.text(statement))
    with auth_db.engine.connect() as connection:
        assert connection.execute(sa.text("select count(*) from audit_events where outcome = 'forged'")).scalar() == 0


def test_created_at_comes_from_the_database_clock(auth_db: Database) -> None:
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(auth_db.engine, "before_cursor_execute", seen)
    try:
        with auth_db.transaction() as session:
            audit.record(session, audit.Event.API_KEY_REVOKED, "success", application_id=None, detail="clock")
            session.flush()
            database_now = session.scalar(sa.text("select now()"))
            recorded = session.scalar(sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
            assert recorded is not None and recorded.detail == "clock"
            assert recorded.created_at == database_now  # the transaction's now(), not the application's clock
    finally:
        sa.event.remove(auth_db.engine, "before_cursor_execute", seen)
    (insert,) = [statement for statement in statements if statement.lstrip().lower().startswith("insert")]
    assert "audit_events" in insert and "created_at" not in insert.split("RETURNING")[0]


def _record(db: Database, count: int, prefix: str = "event") -> None:
    for number in range(count):
        with db.transaction() as session:
            audit.record(session, audit.Event.LOGIN, "match", application_id=None, user_id=f"{prefix}-{number}",
                         distance=0.1 * number, liveness_score=1.0 if number else None, detail=f"ü {number}")


def _verify(db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    monkeypatch.setenv("FACEAUTH_DATABASE_URL", db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setattr(cli.logs, "configure", lambda *_: None)
    code = cli.main(["audit", "verify"])
    return code, capsys.readouterr().out


def _tamper(db: Database, statement: str) -> None:
    """What a superuser could do: change the log with its guard switched off."""
    with db.engine.begin() as connection:
        connection.execute(sa.text("alter table audit_events disable trigger user"))
        connection.execute(sa.text(statement))
        connection.execute(sa.text("alter table audit_events enable trigger user"))


def test_audit_verify_finds_the_first_broken_link(fresh_db: Database, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _record(fresh_db, 6)
    code, out = _verify(fresh_db, monkeypatch, capsys)
    assert code == 0 and out.startswith("OK: 6 audit events"), out
    with fresh_db.engine.connect() as connection:
        ids = list(connection.execute(sa.text("select id from audit_events order by id")).scalars())
    _tamper(fresh_db, f"update audit_events set outcome = 'mismatch' where id = {ids[2]}")
    code, out = _verify(fresh_db, monkeypatch, capsys)
    assert code == 1 and f"BROKEN at event {ids[2]}" in out and "changed" in out, out
    _tamper(fresh_db, f"update audit_events set outcome = 'match' where id = {ids[2]}")  # put back
    assert _verify(fresh_db, monkeypatch, capsys)[0] == 0
    _tamper(fresh_db, f"delete from audit_events where id = {ids[3]}")
    code, out = _verify(fresh_db, monkeypatch, capsys)
    assert code == 1 and f"BROKEN at event {ids[4]}" in out and "removed" in out, out
    _tamper(fresh_db, f"delete from audit_events where id < {ids[4]}")  # retention-like: the oldest go
    assert _verify(fresh_db, monkeypatch, capsys)[0] == 0
    _tamper(fresh_db, f"delete from audit_events where id = {ids[5]}")  # the newest
    code, out = _verify(fresh_db, monkeypatch, capsys)
    assert code == 1 and f"BROKEN at event {ids[5]}" in out and "newer events were removed" in out, out


def test_concurrent_inserts_make_one_chain(fresh_db: Database) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda worker: _record(fresh_db, 25, f"worker-{worker}"), range(8)))
    with fresh_db.transaction() as session:
        result = audit.verify(session)
        links = session.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(AuditEvent.prev_hash)))).one()
    assert result.ok and result.checked == 200, result
    assert tuple(links) == (200, 200)  # no two events claim the same predecessor: no fork


def test_sqlite_chains_in_python(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/chain.db")
    migrate.upgrade(engine)
    db = Database(engine)
    _record(db, 4)
    with db.transaction() as session:
        assert audit.verify(session).ok
        assert session.scalar(sa.select(sa.func.count()).where(AuditEvent.row_hash.is_(None))) == 0
    for statement in ("update audit_events set outcome = 'forged'", "update audit_events set row_hash = 'x'"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(sa.text(statement))
    with engine.begin() as connection:  # a writer bypassing the service leaves an unchained row
        connection.execute(sa.text("insert into audit_events (event, outcome) values ('login', 'match')"))
    with db.transaction() as session:
        result = audit.verify(session)
    assert not result.ok and "no hash" in (result.reason or "")
