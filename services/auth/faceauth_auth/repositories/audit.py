"""The audit log: appended to in the transaction of the change it records, never updated.

Database triggers refuse every UPDATE and TRUNCATE, and every DELETE but retention's
(``delete_batch_before``): on PostgreSQL only in a transaction that set ``faceauth.audit_prune``,
and on every database only of events older than 30 days (migration 0006).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from faceauth_auth.models import AuditEvent
from faceauth_auth.repositories import oldest


class Event(StrEnum):
    ENROLMENT = "enrolment"
    LOGIN = "login"
    VERIFY = "verify"
    IDENTIFY = "identify"
    USER_DELETED = "user_deleted"
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


def record(session: Session, event: Event, outcome: str, *, application_id: int | None, actor: Actor = OPERATOR,
           user_id: str | None = None, distance: float | None = None, liveness_score: float | None = None,
           detail: str | None = None) -> None:
    session.add(AuditEvent(application_id=application_id, event=event.value, external_user_id=user_id,
                           api_key_id=actor.api_key_id, client_address=actor.client_address,
                           outcome=outcome, distance=distance, liveness_score=liveness_score,
                           request_id=actor.request_id, detail=detail))


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

    Only retention calls this: on PostgreSQL it tells the triggers so, for this transaction alone.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.set_config("faceauth.audit_prune", "on", True)))
    return oldest.delete_oldest(session, AuditEvent, cutoff, limit)
