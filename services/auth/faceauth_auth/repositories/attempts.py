"""Login attempts: reservations of the attempt budget and the audit trail of face decisions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from faceauth_auth.models import LoginAttempt
from faceauth_auth.repositories import oldest


def reserve(session: Session, application_id: int, user_id: str) -> int:
    """A row for an attempt whose decision is still to come; its id."""
    attempt = LoginAttempt(application_id=application_id, external_user_id=user_id, succeeded=None)
    session.add(attempt)
    session.flush()
    return attempt.id


def pending_since(session: Session, application_id: int, user_id: str, since: datetime) -> int:
    """Reservations of the user id made after ``since`` that have no decision yet."""
    return session.scalar(sa.select(sa.func.count()).where(
        LoginAttempt.application_id == application_id, LoginAttempt.external_user_id == user_id,
        LoginAttempt.created_at > since, LoginAttempt.succeeded.is_(None))) or 0


def decide(session: Session, attempt_id: int, succeeded: bool, distance: float | None) -> None:
    session.execute(sa.update(LoginAttempt).where(LoginAttempt.id == attempt_id)
                    .values(succeeded=succeeded, distance=distance))


def cancel(session: Session, attempt_id: int) -> None:
    """Drop a reservation that ended without a decision (no usable face, a model server down...)."""
    session.execute(sa.delete(LoginAttempt).where(LoginAttempt.id == attempt_id, LoginAttempt.succeeded.is_(None)))


def outcomes_since(session: Session, application_id: int, since: datetime) -> tuple[int, int]:
    """(failed, decided) attempts of the whole application after ``since``."""
    row = session.execute(sa.select(sa.func.count(LoginAttempt.id).filter(LoginAttempt.succeeded.is_(False)),
                                    sa.func.count(LoginAttempt.succeeded))
                          .where(LoginAttempt.application_id == application_id,
                                 LoginAttempt.created_at > since)).one()
    return int(row[0]), int(row[1])


def delete_batch_before(session: Session, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest attempts made before ``cutoff``; how many were deleted."""
    return oldest.delete_oldest(session, LoginAttempt, cutoff, limit)


def delete_for_user(session: Session, application_id: int, user_id: str) -> None:
    session.execute(sa.delete(LoginAttempt).where(LoginAttempt.application_id == application_id,
                                                  LoginAttempt.external_user_id == user_id))
