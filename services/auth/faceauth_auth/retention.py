"""Retention: delete login attempts and audit events older than a number of days, in batches.

Every face login adds a login attempt (the lockout's memory, with the decision's distance) and an
audit event, so without pruning both tables grow for ever, also with rows for user ids that never
log in again, which is personal data kept past its use. The lockout keeps its state in the
account guards; those idle for as long as attempts are kept and holding no lock go with them, and
attempts inside ``FACEAUTH_LOCKOUT_WINDOW`` are always kept (they may still be reserved); audit events
are kept at least ``AUDIT_MIN_KEEP``. One transaction per batch keeps locks short and lets a
stopped run be started again; each batch records an audit event, as deleting security records should.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from faceauth_auth.db import Database
from faceauth_auth.repositories import attempts, audit, guards
from faceauth_auth.repositories.audit import Event

# Security logs stay at least 90 days (CIS Controls v8, safeguard 8.10); the database's own floor is lower.
AUDIT_MIN_KEEP = timedelta(days=90)


def prune_login_attempts(db: Database, keep: timedelta, lockout_window: timedelta, batch_size: int = 5000,
                         now: datetime | None = None) -> tuple[int, datetime]:
    """Delete login attempts older than ``keep`` (never inside the lockout window); (rows deleted, cutoff)."""
    if keep < timedelta(0):
        raise ValueError("keep must not be negative")
    cutoff = (now or datetime.now(UTC)) - max(keep, lockout_window)
    deleted = _prune(db, attempts.delete_batch_before, cutoff, batch_size, Event.LOGIN_ATTEMPTS_PRUNED,
                     "login attempts")
    _prune(db, guards.delete_idle_before, cutoff, batch_size, Event.LOGIN_ATTEMPTS_PRUNED, "idle account guards")
    return deleted, cutoff


def prune_audit_events(db: Database, keep: timedelta, batch_size: int = 5000,
                       now: datetime | None = None) -> tuple[int, datetime]:
    """Delete audit events older than ``keep`` (at least ``AUDIT_MIN_KEEP``); (rows deleted, cutoff)."""
    if keep < AUDIT_MIN_KEEP:
        raise ValueError(f"audit events are kept at least {AUDIT_MIN_KEEP.days} days")
    cutoff = (now or datetime.now(UTC)) - keep
    return _prune(db, audit.delete_batch_before, cutoff, batch_size, Event.AUDIT_EVENTS_PRUNED,
                  "audit events"), cutoff


def _prune(db: Database, delete_batch: Callable[[Session, datetime, int], int], cutoff: datetime,
           batch_size: int, event: Event, what: str) -> int:
    """Delete batches until one comes back short, each with its audit event; how many rows went."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    deleted = 0
    while True:
        with db.transaction() as session:
            count = delete_batch(session, cutoff, batch_size)
            if count:
                audit.record(session, event, "success", application_id=None,
                             detail=f"{count} {what} older than {cutoff.isoformat()} deleted")
        deleted += count
        if count < batch_size:
            return deleted
