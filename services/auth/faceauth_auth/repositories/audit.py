"""The audit log: appended to in the transaction of the change it records, never updated.

Database triggers refuse every UPDATE and TRUNCATE, and every DELETE but retention's
(``delete_batch_before``): on PostgreSQL only in a transaction that set ``faceauth.audit_prune``,
and on every database only of events older than 30 days (migration 0006).

Hash chain (migration 0009): each event stores ``prev_hash``, the hash of the event before it, and
``row_hash`` = SHA-256 of ``prev_hash`` and its own canonical content (``canonical``), so changing,
inserting or removing an event breaks a link that ``verify`` finds. ``audit_chain_head`` holds the
newest event's id and hash; every insert locks that row, so concurrent inserts queue and the chain
never forks. On PostgreSQL a BEFORE INSERT trigger (SECURITY DEFINER) does all of it, ids included,
whoever inserts; on SQLite ``record`` does it (SQLite has one writer at a time). Retention deletes
the oldest events only, in id order, so the chain still verifies from the oldest event left: its
``prev_hash`` is taken as given.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from faceauth_auth.models import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64  # the "previous hash" of the first event ever recorded


class Event(StrEnum):
    ENROLMENT = "enrolment"
    LOGIN = "login"
    VERIFY = "verify"
    IDENTIFY = "identify"
    USER_DELETED = "user_deleted"
    ACCOUNT_LOCKED = "account_locked"
    ACCOUNT_UNLOCKED = "account_unlocked"
    FACE_DELETED = "face_deleted"
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    TEMPLATE_KEY_ROTATED = "template_key_rotated"
    LOGIN_ATTEMPTS_PRUNED = "login_attempts_pruned"
    AUDIT_EVENTS_PRUNED = "audit_events_pruned"


@dataclass(frozen=True)
class Actor:
    """Who caused an event: the API key and address of a request, or nobody for an operator's command."""

    api_key_id: str | None = None
    client_address: str | None = None
    request_id: str | None = None


OPERATOR = Actor()


def _field(value: str | None) -> str:
    return "~" if value is None else f"{len(value)}:{value}"


def _float(value: float | None) -> str | None:
    return None if value is None else struct.pack(">d", value).hex()  # PostgreSQL: encode(float8send(x), 'hex')


def canonical(event: AuditEvent) -> str:
    """The event's content as hashed: every column but the hashes, length-prefixed, floats as IEEE 754 bits.

    Migration 0009's ``audit_events_content`` builds the same text in SQL.
    """
    created = event.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    parts = (str(event.id), created, None if event.application_id is None else str(event.application_id),
             event.event, event.external_user_id, event.api_key_id, event.client_address, event.outcome,
             _float(event.distance), _float(event.liveness_score), event.request_id, event.detail)
    return "|".join(_field(part) for part in parts)


def chain_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(f"{prev_hash}|{canonical(event)}".encode()).hexdigest()


def record(session: Session, event: Event, outcome: str, *, application_id: int | None, actor: Actor = OPERATOR,
           user_id: str | None = None, distance: float | None = None, liveness_score: float | None = None,
           detail: str | None = None) -> None:
    """Append an event; its time comes from the database (the INSERT never names ``created_at``)."""
    row = AuditEvent(application_id=application_id, event=event.value, external_user_id=user_id,
                     api_key_id=actor.api_key_id, client_address=actor.client_address, outcome=outcome,
                     distance=distance, liveness_score=liveness_score, request_id=actor.request_id, detail=detail)
    if session.get_bind().dialect.name == "postgresql":
        session.add(row)  # the trigger sets id, created_at and the hashes under the chain head's row lock
        return
    # SQLite: take the write lock first (an UPDATE), so no other writer comes between reading the head and
    # moving it; then the row, with the database's time, and its link (the one update the trigger allows).
    session.execute(sa.update(AuditChainHead).where(AuditChainHead.id == 1).values(last_id=AuditChainHead.last_id))
    head = session.get(AuditChainHead, 1, populate_existing=True)
    assert head is not None, "audit_chain_head has no row: run the migrations"
    session.add(row)
    session.flush()
    row.prev_hash = head.last_hash
    row.row_hash = chain_hash(head.last_hash, row)  # reads created_at back from the row
    head.last_id, head.last_hash = row.id, row.row_hash
    session.flush()


@dataclass(frozen=True)
class Verification:
    """What ``verify`` found: how many events it checked and the first broken link, if any."""

    checked: int
    broken_at: int | None = None  # the event id where the chain breaks (None: the head itself)
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def verify(session: Session, batch_size: int = 5000) -> Verification:
    """Check the chain from the oldest event left (retention deletes from the start) to the head."""
    previous: AuditEvent | None = None
    checked = 0
    while True:
        query = sa.select(AuditEvent).order_by(AuditEvent.id).limit(batch_size)
        if previous is not None:
            query = query.where(AuditEvent.id > previous.id)
        batch = list(session.scalars(query))
        for event in batch:
            if event.row_hash is None or event.prev_hash is None:
                return Verification(checked, event.id, "the event has no hash: it was not written through the chain")
            if previous is not None and event.prev_hash != previous.row_hash:
                return Verification(checked, event.id, f"its previous hash is not event {previous.id}'s: an event "
                                                       "between them was removed or changed")
            if chain_hash(event.prev_hash, event) != event.row_hash:
                return Verification(checked, event.id, "its content does not match its hash: it was changed")
            previous, checked = event, checked + 1
        session.expunge_all()  # keep memory flat over a long log
        if len(batch) < batch_size:
            break
    head = session.get(AuditChainHead, 1)
    if head is None:
        return Verification(checked, None, "audit_chain_head has no row")
    if previous is None:
        return Verification(0) if head.last_id is None else Verification(
            0, head.last_id, f"the chain head names event {head.last_id} but no event is left: they were removed")
    if head.last_id != previous.id or head.last_hash != previous.row_hash:
        return Verification(checked, head.last_id, f"the chain head names event {head.last_id}, the newest left is "
                                                   f"{previous.id}: newer events were removed")
    return Verification(checked)


def parse_time(text: str) -> datetime:
    """An ISO 8601 date-time as an aware UTC datetime; without an offset it is UTC. ValueError otherwise."""
    try:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # an offset that pushes it out of years 1-9999
        raise ValueError(f"{text!r} is out of range") from None


@dataclass(frozen=True)
class Filter:
    """Which events to list, newest first; ``before`` is the id where the previous page stopped."""

    application_id: int | None = None
    user_id: str | None = None
    event: Event | None = None
    since: datetime | None = None
    before: int | None = None
    limit: int = 100


def events(session: Session, wanted: Filter) -> list[AuditEvent]:
    query = sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(wanted.limit)
    if wanted.application_id is not None:
        query = query.where(AuditEvent.application_id == wanted.application_id)
    if wanted.user_id is not None:
        query = query.where(AuditEvent.external_user_id == wanted.user_id)
    if wanted.event is not None:
        query = query.where(AuditEvent.event == wanted.event.value)
    if wanted.since is not None:
        query = query.where(AuditEvent.created_at >= wanted.since)
    if wanted.before is not None:
        query = query.where(AuditEvent.id < wanted.before)
    return list(session.scalars(query))


def delete_batch_before(session: Session, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest events made before ``cutoff``; how many were deleted.

    Oldest means first in the chain (by id), and the deletion stops at the first event that is not
    older than ``cutoff``, so what is left is always a whole chain from its oldest event on (a
    transaction that started earlier may commit its event later, with an earlier time).
    Only retention calls this: on PostgreSQL it tells the triggers so, for this transaction alone.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.set_config("faceauth.audit_prune", "on", True)))
    boundary = session.scalar(sa.select(sa.func.min(AuditEvent.id)).where(AuditEvent.created_at >= cutoff))
    query = sa.select(AuditEvent.id).where(AuditEvent.created_at < cutoff).order_by(AuditEvent.id).limit(limit)
    if boundary is not None:
        query = query.where(AuditEvent.id < boundary)
    ids = list(session.scalars(query))
    if ids:
        session.execute(sa.delete(AuditEvent).where(AuditEvent.id.in_(ids)))
    return len(ids)
