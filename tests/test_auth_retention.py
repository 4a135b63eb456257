"""Retention of login attempts: old rows go in batches, each batch audited; the lockout window stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from faceauth_auth import __main__ as cli
from faceauth_auth.db import Database
from faceauth_auth.models import LoginAttempt
from faceauth_auth.repositories import applications, audit
from faceauth_auth.repositories.audit import Event
from faceauth_auth.retention import prune_login_attempts

pytest_plugins = ["tests.auth_fixtures"]

WINDOW = timedelta(minutes=15)


def _application_with_attempts(db: Database, ages: list[timedelta]) -> int:
    """A new application whose user 'alice' made one failed login at each age; its id."""
    now = datetime.now(UTC)
    with db.transaction() as session:
        application = applications.get_or_create(session, f"retention-{now.timestamp()}")
        session.add_all(LoginAttempt(application_id=application.id, external_user_id="alice", succeeded=False,
                                     distance=0.7, created_at=now - age) for age in ages)
        return int(application.id)


def _ages_left(db: Database, application_id: int) -> list[timedelta]:
    now = datetime.now(UTC)
    with db.transaction() as session:
        times = session.scalars(sa.select(LoginAttempt.created_at).where(
            LoginAttempt.application_id == application_id).order_by(LoginAttempt.created_at.desc()))
        return [round((now - moment) / timedelta(days=1)) * timedelta(days=1) for moment in times]


def test_prune_deletes_old_attempts_in_audited_batches(auth_db: Database) -> None:
    days = [timedelta(days=n) for n in (1, 29, 31, 40, 400)]
    application_id = _application_with_attempts(auth_db, days)
    deleted, cutoff = prune_login_attempts(auth_db, timedelta(days=30), WINDOW, batch_size=1)
    assert deleted >= 3 and cutoff < datetime.now(UTC) - timedelta(days=30)
    assert _ages_left(auth_db, application_id) == days[:2]
    with auth_db.transaction() as session:
        batches = audit.events(session, audit.Filter(event=Event.LOGIN_ATTEMPTS_PRUNED, limit=1000))
        assert len(batches) >= 3 and all((event.detail or "").startswith("1 login attempts") for event in batches[:3])
    assert prune_login_attempts(auth_db, timedelta(days=30), WINDOW)[0] == 0  # nothing left to do


def test_prune_never_deletes_inside_the_lockout_window(auth_db: Database) -> None:
    """Keeping 0 days still keeps what the lockout reads, or pruning would unlock a locked user."""
    application_id = _application_with_attempts(auth_db, [timedelta(minutes=1), timedelta(minutes=20)])
    prune_login_attempts(auth_db, timedelta(0), WINDOW)
    with auth_db.transaction() as session:
        left = session.scalar(sa.select(sa.func.count()).where(LoginAttempt.application_id == application_id))
    assert left == 1


def test_prune_command(auth_db: Database, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    application_id = _application_with_attempts(auth_db, [timedelta(days=2), timedelta(days=9)])
    monkeypatch.setenv("FACEAUTH_DATABASE_URL", auth_db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setattr(cli.logs, "configure", lambda *_: None)  # keep pytest's logging as it is
    assert cli.main(["attempts", "prune", "--keep-days", "7"]) == 0
    assert "login attempts older than" in capsys.readouterr().out
    assert _ages_left(auth_db, application_id) == [timedelta(days=2)]
    with pytest.raises(SystemExit):
        cli.main(["attempts", "prune", "--keep-days", "-1"])
    with pytest.raises(SystemExit):
        cli.main(["attempts", "prune", "--batch-size", "0"])
