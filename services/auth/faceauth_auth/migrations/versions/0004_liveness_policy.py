"""Per-application liveness policy (off, report, enforce); NULL follows FACEAUTH_LIVENESS_POLICY.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("applications") as table:
        table.add_column(sa.Column("liveness_policy", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("applications") as table:
        table.drop_column("liveness_policy")
