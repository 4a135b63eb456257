"""Bringing a database to what this code expects: the schema (Alembic) and the bootstrap API key.

Runs at start-up (once, in gunicorn's master: faceauth_auth.gunicorn_conf) or through
``python -m faceauth_auth db upgrade``.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from faceauth_auth import apikeys
from faceauth_auth.config import Settings
from faceauth_auth.db import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant will do; it only has to be the same in every replica that may migrate at once.
_ADVISORY_LOCK = 0x6661636561757468  # "faceauth"


# What the service's own role may do on PostgreSQL when migrations run as another (owner) role: the
# audit log only INSERT (never naming id, created_at or the hashes) and SELECT; no UPDATE, DELETE or
# TRUNCATE, so `audit prune` runs as the owner. The chain trigger is SECURITY DEFINER, so the head row
# needs only SELECT (for `audit verify`). Applied at the end of every upgrade, so that the tables of
# later migrations are covered too.
RUNTIME_TABLES = ("applications", "api_keys", "users", "face_templates", "login_attempts")
AUDIT_INSERT_COLUMNS = ("application_id", "event", "external_user_id", "api_key_id", "client_address", "outcome",
                        "distance", "liveness_score", "request_id", "detail")
_RUNTIME_GRANTS = """
grant usage on schema {schema} to {role};
grant select, insert, update, delete on {tables} to {role};
revoke all on audit_events, audit_chain_head, alembic_version from {role};
grant select on audit_events, audit_chain_head, alembic_version to {role};
grant insert ({audit_columns}) on audit_events to {role};
grant usage, select on all sequences in schema {schema} to {role};
"""


def grant_runtime_role(connection: sa.Connection, role: str) -> None:
    """Give the service's PostgreSQL role its rights, and no more (``FACEAUTH_DB_RUNTIME_ROLE``)."""
    quote = connection.dialect.identifier_preparer.quote
    schema = connection.execute(sa.text("select current_schema()")).scalar_one()
    connection.execute(sa.text(_RUNTIME_GRANTS.format(
        schema=quote(schema), role=quote(role), tables=", ".join(RUNTIME_TABLES),
        audit_columns=", ".join(AUDIT_INSERT_COLUMNS))))


def upgrade(engine: sa.Engine, revision: str = "head", runtime_role: str | None = None) -> None:
    """Bring the schema to ``revision`` in one transaction; concurrent replicas wait on a Postgres lock.

    With ``runtime_role`` (PostgreSQL), that role is then granted what the service needs (RUNTIME_TABLES).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("set local statement_timeout = 0"))  # building an index may take long
            connection.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        if runtime_role and connection.dialect.name == "postgresql":
            grant_runtime_role(connection, runtime_role)


def prepare(settings: Settings, engine: sa.Engine) -> None:
    """Migrate (unless FACEAUTH_MIGRATE_ON_START is off) and store FACEAUTH_BOOTSTRAP_API_KEY if set."""
    if settings.migrate_on_start:
        upgrade(engine, runtime_role=settings.db_runtime_role)
    if settings.bootstrap_api_key:
        apikeys.ensure_bootstrap_key(Database(engine), settings.bootstrap_api_key,
                                     apikeys.hasher_from_settings(settings))
