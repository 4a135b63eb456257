"""Audit log integrity: the database's own time and a hash chain.

- ``created_at`` gets a default of the database's clock (PostgreSQL ``now()``; SQLite its 'now' in
  the format SQLAlchemy stores), and the service no longer sends it.
- ``prev_hash`` and ``row_hash`` chain the events (repositories.audit.chain_hash); ``audit_chain_head``
  is one row with the newest event's id and hash. Events already there are chained here, in id order.
- PostgreSQL: a BEFORE INSERT trigger (SECURITY DEFINER, so it works for a role that may not touch
  the head) locks the head row, gives the event its id after the lock (so ids follow the chain), and
  fills the hashes: correct under concurrent inserts, whoever inserts. SQLite: the service chains
  in Python (it has one writer at a time), and the update trigger lets exactly that first update of
  an unchained row's hash columns through.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm
from alembic import op

from faceauth_auth.repositories import audit

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_COLUMNS = ("id", "created_at", "application_id", "event", "external_user_id", "api_key_id", "client_address",
            "outcome", "distance", "liveness_score", "request_id", "detail")

# The same text as repositories.audit.canonical, in SQL.
_POSTGRES_CHAIN = """
create function audit_events_field(value text) returns text language sql immutable as $$
    select case when value is null then '~' else length(value)::text || ':' || value end
$$;
create function audit_events_content(e audit_events) returns text language sql stable as $$
    select concat_ws('|', audit_events_field(e.id::text),
                     audit_events_field(to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')),
                     audit_events_field(e.application_id::text), audit_events_field(e.event),
                     audit_events_field(e.external_user_id), audit_events_field(e.api_key_id),
                     audit_events_field(e.client_address), audit_events_field(e.outcome),
                     audit_events_field(encode(float8send(e.distance), 'hex')),
                     audit_events_field(encode(float8send(e.liveness_score), 'hex')),
                     audit_events_field(e.request_id), audit_events_field(e.detail))
$$;
create function audit_events_chain() returns trigger language plpgsql security definer
    set search_path = {schema}, pg_temp as $$
declare
    previous text;
begin
    -- The row lock queues concurrent inserts; whoever waits reads the head its predecessor committed.
    select last_hash into strict previous from audit_chain_head where id = 1 for update;
    new.id := nextval(pg_get_serial_sequence('{schema}.audit_events', 'id'));
    new.created_at := coalesce(new.created_at, now());
    new.prev_hash := previous;
    new.row_hash := encode(sha256(convert_to(previous || '|' || audit_events_content(new), 'UTF8')), 'hex');
    update audit_chain_head set last_id = new.id, last_hash = new.row_hash where id = 1;
    return new;
end $$;
create trigger audit_events_chain before insert on audit_events
    for each row execute function audit_events_chain();
"""
# Migration 0006's SQLite DELETE trigger, made again after batch_alter_table rebuilt the table.
_SQLITE_NO_DELETE = """
create trigger audit_events_no_delete before delete on audit_events
    when old.created_at >= datetime('now', '-30 days')
begin
    select raise(abort, 'audit_events is append-only: DELETE refused');
end"""
_SQLITE_UPDATE_GUARD = """
create trigger audit_events_no_update before update on audit_events{condition}
begin
    select raise(abort, 'audit_events is append-only: UPDATE refused');
end
"""
# The one update SQLite lets through: an unchained row getting its hashes, nothing else changing.
_SQLITE_FIRST_LINK = ("\n    when not (old.row_hash is null and old.prev_hash is null and new.row_hash is not null"
                      + "".join(f" and new.{column} is old.{column}" for column in _COLUMNS) + ")")


def _chain_existing(bind: sa.Connection) -> None:
    events = sa.table("audit_events", *(sa.column(c) for c in (*_COLUMNS, "prev_hash", "row_hash")))
    previous, last_id = audit.GENESIS_HASH, None
    with sa.orm.Session(bind=bind) as session:
        for event in session.scalars(sa.select(audit.AuditEvent).order_by(audit.AuditEvent.id)
                                     .execution_options(yield_per=1000)):
            row_hash = audit.chain_hash(previous, event)
            bind.execute(sa.update(events).where(events.c.id == event.id)
                         .values(prev_hash=previous, row_hash=row_hash))
            previous, last_id = row_hash, event.id
    bind.execute(sa.text("insert into audit_chain_head (id, last_id, last_hash) values (1, :id, :hash)"),
                 {"id": last_id, "hash": previous})


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.create_table("audit_chain_head",
                    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("last_id", sa.BigInteger, nullable=True),
                    sa.Column("last_hash", sa.String(64), nullable=False))
    if postgres:
        op.add_column("audit_events", sa.Column("prev_hash", sa.String(64), nullable=True))
        op.add_column("audit_events", sa.Column("row_hash", sa.String(64), nullable=True))
        op.alter_column("audit_events", "created_at", server_default=sa.text("now()"))
        op.execute("alter table audit_events disable trigger audit_events_no_change")
        _chain_existing(bind)
        op.execute("alter table audit_events enable trigger audit_events_no_change")
        schema = bind.execute(sa.text("select current_schema()")).scalar_one()
        op.execute(_POSTGRES_CHAIN.replace("{schema}", schema))
    else:
        op.execute("drop trigger audit_events_no_update")
        op.execute("drop trigger audit_events_no_delete")
        # The column default needs the table rebuilt on SQLite; the triggers go first and come back after.
        with op.batch_alter_table("audit_events") as table:
            table.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
            table.add_column(sa.Column("row_hash", sa.String(64), nullable=True))
            table.alter_column("created_at", existing_type=sa.DateTime(timezone=True), existing_nullable=False,
                               server_default=sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"))
        _chain_existing(bind)
        op.execute(_SQLITE_UPDATE_GUARD.format(condition=_SQLITE_FIRST_LINK))
        op.execute(_SQLITE_NO_DELETE)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("drop trigger audit_events_chain on audit_events")
        op.execute("drop function audit_events_chain(); drop function audit_events_content(audit_events); "
                   "drop function audit_events_field(text)")
        op.alter_column("audit_events", "created_at", server_default=None)
        op.drop_column("audit_events", "row_hash")
        op.drop_column("audit_events", "prev_hash")
    else:
        op.execute("drop trigger audit_events_no_update")
        op.execute("drop trigger audit_events_no_delete")
        with op.batch_alter_table("audit_events") as table:
            table.drop_column("row_hash")
            table.drop_column("prev_hash")
            table.alter_column("created_at", existing_type=sa.DateTime(timezone=True), existing_nullable=False,
                               server_default=None)
        op.execute(_SQLITE_UPDATE_GUARD.format(condition=""))
        op.execute(_SQLITE_NO_DELETE)
    op.drop_table("audit_chain_head")
