"""Active liveness challenges, and the liveness policy ``enforce`` renamed ``enforce-passive``.

``liveness_challenges`` holds each issued challenge until it expires (faceauth_auth.challenges);
stored ``enforce`` policies become ``enforce-passive`` (the service still reads ``enforce`` as that).
Downgrading turns ``enforce-passive`` and ``challenge`` back into ``enforce``, the strictest policy
the older code knows, so that no application silently loses its refusals.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from faceauth_auth.models import USER_ID_LENGTH, UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "liveness_challenges",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("application_id", sa.Integer, sa.ForeignKey("applications.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("external_user_id", sa.String(USER_ID_LENGTH), nullable=True),
        sa.Column("steps", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("consumed_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_liveness_challenges_expires_at", "liveness_challenges", ["expires_at"])
    op.execute("update applications set liveness_policy = 'enforce-passive' where liveness_policy = 'enforce'")


def downgrade() -> None:
    op.execute("update applications set liveness_policy = 'enforce' "
               "where liveness_policy in ('enforce-passive', 'challenge')")
    op.drop_index("ix_liveness_challenges_expires_at", table_name="liveness_challenges")
    op.drop_table("liveness_challenges")
