"""Retention: old login attempts and audit events go in batches, each batch audited.

The lockout window always stays; audit events stay at least 90 days, and the database itself
deletes them only for retention and only past 30 days.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from faceauth_auth import __main__ as cli
from faceauth_auth import migrate
from faceauth_auth.db import Database, create_engine
from faceauth_auth.models import AuditEvent, LoginAttempt
from faceauth_auth.repositories import applications, audit
from faceauth_auth.repositories.audit import Event
from faceauth_auth.retention import prune_audit_events, prune_login_attempts

pytest_plugins = ["tests.auth_fixtures"]

WINDOW = timedelta(minutes=15)


def _application_with(db: Database, table: type[AuditEvent | LoginAttempt], ages: list[timedelta]) -> int:
    """A new application whose user 'alice' has a row in ``table`` at each age; its id."""
    now = datetime.now(UTC)
    with db.transaction() as session:
        application = applications.get_or_create(session, f"retention-{now.timestamp()}")
        # Oldest first, as time runs: retention deletes from the start of the audit chain.
        for age in sorted(ages, reverse=table is AuditEvent):
            if table is LoginAttempt:
                session.add(LoginAttempt(application_id=application.id, external_user_id="alice", succeeded=False,
                                         distance=0.7, created_at=now - age))
            else:
                session.add(AuditEvent(application_id=application.id, external_user_id="alice", event="login",
                                       outcome="failure", created_at=now - age))
        return int(application.id)


def _ages_left(db: Database, application_id: int, table: type[AuditEvent | LoginAttempt] = LoginAttempt,
               ) -> list[timedelta]:
    now = datetime.now(UTC)
    with db.transaction() as session:
        times = session.scalars(sa.select(table.created_at).where(
            table.application_id == application_id).order_by(table.created_at.desc()))
        return [round((now - moment) / timedelta(days=1)) * timedelta(days=1) for moment in times]


def test_prune_deletes_old_attempts_in_audited_batches(auth_db: Database) -> None:
    days = [timedelta(days=n) for n in (1, 29, 31, 40, 400)]
    application_id = _application_with(auth_db, LoginAttempt, days)
    deleted, cutoff = prune_login_attempts(auth_db, timedelta(days=30), WINDOW, batch_size=1)
    assert deleted >= 3 and cutoff < datetime.now(UTC) - timedelta(days=30)
    assert _ages_left(auth_db, application_id) == days[:2]
    with auth_db.transaction() as session:
        batches = audit.events(session, audit.Filter(event=Event.LOGIN_ATTEMPTS_PRUNED, limit=1000))
        assert len(batches) >= 3 and all((event.detail or "").startswith("1 login attempts") for event in batches[:3])
    assert prune_login_attempts(auth_db, timedelta(days=30), WINDOW)[0] == 0  # nothing left to do


def test_prune_never_deletes_inside_the_lockout_window(auth_db: Database) -> None:
    """Keeping 0 days still keeps what the lockout reads, or pruning would unlock a locked user."""
    application_id = _application_with(auth_db, LoginAttempt, [timedelta(minutes=1), timedelta(minutes=20)])
    prune_login_attempts(auth_db, timedelta(0), WINDOW)
    with auth_db.transaction() as session:
        left = session.scalar(sa.select(sa.func.count()).where(LoginAttempt.application_id == application_id))
    assert left == 1


def test_prune_command(auth_db: Database, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    application_id = _application_with(auth_db, LoginAttempt, [timedelta(days=2), timedelta(days=9)])
    monkeypatch.setenv("FACEAUTH_DATABASE_URL", auth_db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setattr(cli.logs, "configure", lambda *_: None)  # keep pytest's logging as it is
    assert cli.main(["attempts", "prune", "--keep-days", "7"]) == 0
    assert "login attempts older than" in capsys.readouterr().out
    assert _ages_left(auth_db, application_id) == [timedelta(days=2)]
    with pytest.raises(SystemExit):
        cli.main(["attempts", "prune", "--keep-days", "-1"])
    with pytest.raises(SystemExit):
        cli.main(["attempts", "prune", "--batch-size", "0"])


def test_audit_prune_deletes_old_events_in_audited_batches(fresh_db: Database) -> None:
    auth_db = fresh_db
    days = [timedelta(days=n) for n in (1, 100, 364, 366, 800)]
    application_id = _application_with(auth_db, AuditEvent, days)
    deleted, cutoff = prune_audit_events(auth_db, timedelta(days=365), batch_size=1)
    assert deleted >= 2 and cutoff < datetime.now(UTC) - timedelta(days=365)
    assert _ages_left(auth_db, application_id, AuditEvent) == days[:3]
    with auth_db.transaction() as session:
        batches = audit.events(session, audit.Filter(event=Event.AUDIT_EVENTS_PRUNED, limit=1000))
        assert len(batches) >= 2 and all((event.detail or "").startswith("1 audit events") for event in batches[:2])
    assert prune_audit_events(auth_db, timedelta(days=365))[0] == 0
    with pytest.raises(ValueError, match="at least 90 days"):
        prune_audit_events(auth_db, timedelta(days=89))
    with auth_db.transaction() as session:  # the chain still verifies from the oldest event left
        assert audit.verify(session).ok


def test_prune_stops_at_the_first_young_event_so_the_chain_stays_whole(fresh_db: Database) -> None:
    """An event with an earlier time but a later place in the chain (its transaction started first) is
    deleted only with those before it."""
    application_id = _application_with(fresh_db, AuditEvent, [timedelta(days=400), timedelta(days=100)])
    with fresh_db.transaction() as session:
        session.add(AuditEvent(application_id=application_id, event="login", outcome="failure",
                               created_at=datetime.now(UTC) - timedelta(days=500)))
    assert prune_audit_events(fresh_db, timedelta(days=365))[0] == 1
    assert _ages_left(fresh_db, application_id, AuditEvent) == [timedelta(days=100), timedelta(days=500)]
    with fresh_db.transaction() as session:
        assert audit.verify(session).ok


def test_postgres_deletes_audit_events_only_for_retention_and_only_past_30_days(fresh_db: Database) -> None:
    auth_db = fresh_db
    days = [timedelta(days=29), timedelta(days=31)]
    application_id = _application_with(auth_db, AuditEvent, days)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), auth_db.engine.begin() as connection:
        connection.execute(sa.text("delete from audit_events where application_id = :id"), {"id": application_id})
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), auth_db.transaction() as session:
        audit.delete_batch_before(session, datetime.now(UTC), 1_000_000)  # the young events are refused
    assert _ages_left(auth_db, application_id, AuditEvent) == days
    with auth_db.transaction() as session:
        audit.delete_batch_before(session, datetime.now(UTC) - timedelta(days=30), 1_000_000)
    assert _ages_left(auth_db, application_id, AuditEvent) == days[:1]
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), auth_db.engine.begin() as connection:
        connection.execute(sa.text("select set_config('faceauth.audit_prune', 'on', true)"))
        connection.execute(sa.text("update audit_events set outcome = 'forged' where application_id = :id"),
                           {"id": application_id})


def test_sqlite_deletes_audit_events_only_past_30_days(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/faceauth.db")
    migrate.upgrade(engine)
    db = Database(engine)
    days = [timedelta(days=29), timedelta(days=100)]
    application_id = _application_with(db, AuditEvent, days)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(sa.text("delete from audit_events"))
    assert prune_audit_events(db, timedelta(days=90))[0] == 1
    assert _ages_left(db, application_id, AuditEvent) == days[:1]


def test_audit_prune_command(fresh_db: Database, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    auth_db = fresh_db
    application_id = _application_with(auth_db, AuditEvent, [timedelta(days=100), timedelta(days=400)])
    monkeypatch.setenv("FACEAUTH_DATABASE_URL", auth_db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setattr(cli.logs, "configure", lambda *_: None)
    assert cli.main(["audit", "prune"]) == 0  # keeps 365 days
    assert "audit events older than" in capsys.readouterr().out
    assert _ages_left(auth_db, application_id, AuditEvent) == [timedelta(days=100)]
    for too_short in (["--keep-days", "89"], ["--batch-size", "0"]):
        with pytest.raises(SystemExit):
            cli.main(["audit", "prune", *too_short])
