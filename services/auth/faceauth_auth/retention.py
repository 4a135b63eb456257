"""Retention of login attempts: delete those older than a number of days, in batches.

Every face login adds a row (the lockout's memory, with the decision's distance), so without
pruning the table grows for ever, also with rows for user ids that never log in again. The lockout
only reads the last ``FACEAUTH_LOCKOUT_WINDOW`` seconds, so rows inside that window are always kept.
One transaction per batch keeps locks short and lets a stopped run be started again; each batch
records an audit event, as deleting security records should be.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from faceauth_auth.db import Database
from faceauth_auth.repositories import attempts, audit
from faceauth_auth.repositories.audit import Event


def prune_login_attempts(db: Database, keep: timedelta, lockout_window: timedelta, batch_size: int = 5000,
                         now: datetime | None = None) -> tuple[int, datetime]:
    """Delete login attempts older than ``keep`` (never inside the lockout window); (rows deleted, cutoff)."""
    if keep < timedelta(0) or batch_size < 1:
        raise ValueError("keep must not be negative and batch_size must be positive")
    cutoff = (now or datetime.now(UTC)) - max(keep, lockout_window)
    deleted = 0
    while True:
        with db.transaction() as session:
            count = attempts.delete_batch_before(session, cutoff, batch_size)
            if count:
                audit.record(session, Event.LOGIN_ATTEMPTS_PRUNED, "success", application_id=None,
                             detail=f"{count} login attempts older than {cutoff.isoformat()} deleted")
        deleted += count
        if count < batch_size:
            return deleted, cutoff
