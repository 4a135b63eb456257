"""Login attempts: the lockout's memory and the audit trail of face-login decisions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from faceauth_auth.models import LoginAttempt
from faceauth_auth.repositories import oldest


def add(session: Session, application_id: int, user_id: str, succeeded: bool, distance: float | None) -> None:
    session.add(LoginAttempt(application_id=application_id, external_user_id=user_id, succeeded=succeeded,
                             distance=distance))


def failures_since(session: Session, application_id: int, user_id: str, since: datetime) -> list[datetime]:
    """Times of failed attempts after ``since`` and after the last success, oldest first."""
    mine = sa.and_(LoginAttempt.application_id == application_id, LoginAttempt.external_user_id == user_id,
                   LoginAttempt.created_at > since)
    last_success = session.scalar(sa.select(sa.func.max(LoginAttempt.created_at)).where(mine, LoginAttempt.succeeded))
    query = sa.select(LoginAttempt.created_at).where(mine, sa.not_(LoginAttempt.succeeded))
    if last_success is not None:
        query = query.where(LoginAttempt.created_at > last_success)
    return list(session.scalars(query.order_by(LoginAttempt.created_at)))


def delete_batch_before(session: Session, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest attempts made before ``cutoff``; how many were deleted."""
    return oldest.delete_oldest(session, LoginAttempt, cutoff, limit)


def delete_for_user(session: Session, application_id: int, user_id: str) -> None:
    session.execute(sa.delete(LoginAttempt).where(LoginAttempt.application_id == application_id,
                                                  LoginAttempt.external_user_id == user_id))
