"""Template encryption (a key id per face) and the append-only audit log.

Existing faces keep their plaintext embedding and get key_id NULL: nothing is re-encrypted here,
``python -m faceauth_auth templates reencrypt`` does that afterwards, in batches. audit_events
refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL) through triggers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from faceauth_auth.models import USER_ID_LENGTH, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_POSTGRES_GUARD = """
create function audit_events_append_only() returns trigger language plpgsql as $$
begin
    raise exception using message = 'audit_events is append-only: ' || tg_op || ' refused',
                          errcode = 'insufficient_privilege';
end $$;
create trigger audit_events_no_change before update or delete on audit_events
    for each row execute function audit_events_append_only();
create trigger audit_events_no_truncate before truncate on audit_events
    for each statement execute function audit_events_append_only();
"""
_SQLITE_GUARDS = [f"""
create trigger audit_events_no_{operation} before {operation} on audit_events
begin
    select raise(abort, 'audit_events is append-only: {operation.upper()} refused');
end
""" for operation in ("update", "delete")]


def upgrade() -> None:
    with op.batch_alter_table("face_templates") as table:
        table.add_column(sa.Column("key_id", sa.String(16), nullable=True))
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("application_id", sa.Integer, sa.ForeignKey("applications.id"), nullable=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("external_user_id", sa.String(USER_ID_LENGTH), nullable=True),
        sa.Column("api_key_id", sa.String(16), nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("distance", sa.Float, nullable=True),
        sa.Column("liveness_score", sa.Float, nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.Index("ix_audit_events_application", "application_id", "id"),
        sa.Index("ix_audit_events_user", "application_id", "external_user_id", "id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_GUARD)
    else:
        for guard in _SQLITE_GUARDS:
            op.execute(guard)


def downgrade() -> None:
    op.drop_table("audit_events")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("drop function audit_events_append_only()")
    with op.batch_alter_table("face_templates") as table:
        table.drop_column("key_id")
