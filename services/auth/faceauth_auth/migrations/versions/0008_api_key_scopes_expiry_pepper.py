"""API keys: keyed hashes, scopes and an optional expiry.

``key_hash_scheme`` says how ``key_hash`` was made: existing rows are 'sha256' (the unkeyed hash of
before), and ``faceauth_auth.apikeys.authenticate`` rehashes each of them under the pepper
(FACEAUTH_API_KEY_PEPPER_FILE, HMAC-SHA256) the first time its key is used; new keys are stored
'hmac-sha256' from the start. Existing keys get every scope (``enrol login admin``), so nothing that
worked before stops working; ``expires_at`` NULL means the key lasts until revoked.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from faceauth_auth.models import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("key_hash_scheme", sa.String(16), nullable=False, server_default="sha256"))
        table.add_column(sa.Column("scopes", sa.String(64), nullable=False, server_default="admin enrol login"))
        table.add_column(sa.Column("expires_at", UtcDateTime, nullable=True))
    # The defaults were for the rows already there; the code names the scheme and scopes of every new key.
    with op.batch_alter_table("api_keys") as table:
        table.alter_column("key_hash_scheme", server_default=None)
        table.alter_column("scopes", server_default=None)


def downgrade() -> None:
    # Keys rehashed under the pepper no longer match an unkeyed SHA-256: they stop working after a downgrade.
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("expires_at")
        table.drop_column("scopes")
        table.drop_column("key_hash_scheme")
