"""Batch deletes for retention: the oldest rows of a table written before a cutoff."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from faceauth_auth.models import AuditEvent, LoginAttempt


def delete_oldest(session: Session, table: type[AuditEvent | LoginAttempt], cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest rows made before ``cutoff``; how many were deleted."""
    oldest = sa.select(table.id).where(table.created_at < cutoff).order_by(table.created_at).limit(limit)
    # Ids first: not every database takes LIMIT in a DELETE's subquery.
    ids = list(session.scalars(oldest))
    if ids:
        session.execute(sa.delete(table).where(table.id.in_(ids)))
    return len(ids)
