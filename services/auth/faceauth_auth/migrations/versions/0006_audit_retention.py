"""Audit retention: the triggers let ``python -m faceauth_auth audit prune`` delete old events.

Updates and TRUNCATE stay refused. A DELETE passes only for events older than 30 days, whoever
asks, and on PostgreSQL only in a transaction that set ``faceauth.audit_prune`` (as
``repositories.audit.delete_batch_before`` does), so a stray ``delete from audit_events`` still
fails. created_at gets an index for the pruning's range scans.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_REFUSE = """    raise exception using message = 'audit_events is append-only: ' || tg_op || ' refused',
                          errcode = 'insufficient_privilege';"""
_POSTGRES_PRUNABLE = f"""
create or replace function audit_events_append_only() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' and current_setting('faceauth.audit_prune', true) = 'on' then
        if old.created_at < now() - interval '30 days' then
            return old;
        end if;
    end if;
{_REFUSE}
end $$;
"""
_POSTGRES_APPEND_ONLY = f"""
create or replace function audit_events_append_only() returns trigger language plpgsql as $$
begin
{_REFUSE}
end $$;
"""
_SQLITE_DELETE_GUARD = """
create trigger audit_events_no_delete before delete on audit_events{condition}
begin
    select raise(abort, 'audit_events is append-only: DELETE refused');
end
"""


def upgrade() -> None:
    op.create_index("ix_audit_events_created_at", "audit_events", ["created_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_PRUNABLE)
    else:  # SQLite stores times as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC, which compare as text
        op.execute("drop trigger audit_events_no_delete")
        op.execute(_SQLITE_DELETE_GUARD.format(condition="\n    when old.created_at >= datetime('now', '-30 days')"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_APPEND_ONLY)
    else:
        op.execute("drop trigger audit_events_no_delete")
        op.execute(_SQLITE_DELETE_GUARD.format(condition=""))
    op.drop_index("ix_audit_events_created_at", table_name="audit_events")
