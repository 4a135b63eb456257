"""The data layer's tests run against the machine's real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from faceauth_auth import apikeys, migrate
from faceauth_auth.db import Database, create_engine
from faceauth_auth.repositories import audit
from tests.auth_helpers import scratch_database


def test_real_postgres_answers(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        version = connection.execute(sa.text("select version()")).scalar_one()
    engine.dispose()
    assert version.startswith("PostgreSQL")


def test_the_runtime_role_may_only_insert_and_read_audit_events(postgres_url: str) -> None:
    """Migrations as the owner, the service as FACEAUTH_DB_RUNTIME_ROLE: the audit log is append-only for it."""
    role = f"faceauth_runtime_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'create role "{role}" login'))
    try:
        with scratch_database(postgres_url) as url:
            owner = create_engine(url)
            migrate.upgrade(owner, runtime_role=role)
            runtime = create_engine(make_url(url).set(username=role).render_as_string(hide_password=False))
            db = Database(runtime)
            hasher = apikeys.KeyHasher(bytes(32))
            with db.transaction() as session:  # the service's own work
                _, key = apikeys.create(session, "shop", hasher=hasher)
                audit.record(session, audit.Event.LOGIN, "match", application_id=None, user_id="alice")
            with db.transaction() as session:
                assert apikeys.authenticate(session, key, hasher) is not None
                assert [e.event for e in audit.events(session, audit.Filter())] == ["login", "api_key_created"]
                assert audit.verify(session).ok  # the chain trigger ran for the runtime role too
            refused = ["update audit_events set outcome = 'forged'", "delete from audit_events",
                       "truncate audit_events",
                       "insert into audit_events (event, outcome, created_at) values ('login', 'match', now())",
                       "update audit_chain_head set last_hash = 'x'"]
            for statement in refused:
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), runtime.begin() as connection:
                    connection.execute(sa.text("select set_config('faceauth.audit_prune', 'on', true)"))
                    connection.execute(sa.text(statement))
            with runtime.connect() as connection:
                assert connection.execute(sa.text("select count(*) from audit_events")).scalar_one() == 2
            runtime.dispose()
            owner.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'drop role if exists "{role}"'))
        admin.dispose()
