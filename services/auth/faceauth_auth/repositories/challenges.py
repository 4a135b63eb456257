"""Liveness challenges: issued, then consumed at most once before they expire."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from faceauth_auth.models import LivenessChallenge, utcnow

# Expired challenges are deleted this long after they expire, by the next issue in the same application.
KEEP_EXPIRED = timedelta(hours=1)


def issue(session: Session, challenge_id: str, application_id: int, user_id: str | None, steps: Sequence[str],
          lifetime: float) -> LivenessChallenge:
    now = utcnow()
    session.execute(sa.delete(LivenessChallenge).where(LivenessChallenge.application_id == application_id,
                                                       LivenessChallenge.expires_at < now - KEEP_EXPIRED))
    challenge = LivenessChallenge(id=challenge_id, application_id=application_id, external_user_id=user_id,
                                  steps=" ".join(steps), created_at=now, expires_at=now + timedelta(seconds=lifetime))
    session.add(challenge)
    session.flush()
    return challenge


def consume(session: Session, challenge_id: str, application_id: int, user_id: str | None,
            now: datetime | None = None) -> tuple[str, ...] | None:
    """The steps of the challenge, marked consumed; None when it is unknown, another application's or
    user id's, expired or consumed already. One UPDATE decides, so two answers racing cannot both win."""
    now = now or utcnow()
    user = (LivenessChallenge.external_user_id.is_(None) if user_id is None
            else LivenessChallenge.external_user_id == user_id)
    mine = sa.and_(LivenessChallenge.id == challenge_id, LivenessChallenge.application_id == application_id, user)
    result = session.execute(sa.update(LivenessChallenge)
                             .where(mine, LivenessChallenge.consumed_at.is_(None), LivenessChallenge.expires_at > now)
                             .values(consumed_at=now).execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    steps = session.scalar(sa.select(LivenessChallenge.steps).where(LivenessChallenge.id == challenge_id))
    return tuple(steps.split()) if steps else None
