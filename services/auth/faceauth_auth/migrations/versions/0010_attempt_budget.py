"""The attempt budget: login attempts reserved before the models run, and a guard row per user id.

``login_attempts.succeeded`` may be NULL (a reservation whose decision is still being made), and
``account_guards`` keeps each user id's failures, escalating temporary lockouts and permanent lock
(faceauth_auth.lockout); an index by application and time serves the failure-rate breaker.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from faceauth_auth.models import USER_ID_LENGTH, UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("login_attempts") as table:
        table.alter_column("succeeded", existing_type=sa.Boolean(), nullable=True)
    op.create_index("ix_login_attempts_application_time", "login_attempts", ["application_id", "created_at"])
    op.create_table(
        "account_guards",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("application_id", sa.Integer, sa.ForeignKey("applications.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("external_user_id", sa.String(USER_ID_LENGTH), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("lockouts", sa.Integer, nullable=False),
        sa.Column("locked_until", UtcDateTime, nullable=True),
        sa.Column("locked_permanently_at", UtcDateTime, nullable=True),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("application_id", "external_user_id"),
    )
    op.create_index("ix_account_guards_updated_at", "account_guards", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_account_guards_updated_at", table_name="account_guards")
    op.drop_table("account_guards")
    op.drop_index("ix_login_attempts_application_time", table_name="login_attempts")
    op.execute("delete from login_attempts where succeeded is null")
    with op.batch_alter_table("login_attempts") as table:
        table.alter_column("succeeded", existing_type=sa.Boolean(), nullable=False)
