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


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` in one transaction; concurrent replicas wait on a Postgres lock."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("set local statement_timeout = 0"))  # building an index may take long
            connection.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def prepare(settings: Settings, engine: sa.Engine) -> None:
    """Migrate (unless FACEAUTH_MIGRATE_ON_START is off) and store FACEAUTH_BOOTSTRAP_API_KEY if set."""
    if settings.migrate_on_start:
        upgrade(engine)
    if settings.bootstrap_api_key:
        apikeys.ensure_bootstrap_key(Database(engine), settings.bootstrap_api_key,
                                     apikeys.hasher_from_settings(settings))
