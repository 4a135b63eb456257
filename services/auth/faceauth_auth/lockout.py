"""The attempt budget of each user id (Keycloak-style brute-force protection) for face login and verify.

``max_failures`` failed decisions in a row lock the user id for ``window`` seconds; each further
lockout lasts twice the one before (at most ``max_wait``), and after ``permanent_after`` lockouts the
lock stays until an operator lifts it (``DELETE /v1/users/<id>/lock``, ``users unlock``). A success
clears it all; failures older than ``window`` no longer count toward the next lockout.

Budgets are spent race-free: before the models run, a request takes the user id's guard row (SELECT
... FOR UPDATE), checks it and writes a reservation (a login attempt without a decision), so that
parallel requests count the decisions still in flight as failures to be: 32 parallel impostor
logins get at most ``max_failures`` decisions. A reservation that gets no decision is dropped, and
one left behind by a crashed worker stops counting after ``PENDING_SECONDS``. Unknown user ids are
guarded like known ones, so neither the answers nor the locks tell which ids exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from faceauth_auth.errors import ApiError
from faceauth_auth.models import AccountGuard
from faceauth_auth.repositories import attempts, guards

# Longer than any face request can take (admission wait, model calls with retries, database): a
# reservation older than this belongs to a request that died.
PENDING_SECONDS = 60.0


@dataclass(frozen=True)
class Lock:
    """A lock a failed decision just set: temporary until ``until``, or permanent."""

    lockouts: int
    until: datetime | None  # None: permanent

    @property
    def detail(self) -> str:
        kind = "permanent" if self.until is None else f"until {self.until.isoformat(timespec='seconds')}"
        return f"lockout {self.lockouts}, {kind}"


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int  # failed decisions in a row that lock the user id; 0 turns the lockout off
    window: float  # seconds of the first lockout; also how long a failure counts toward the next one
    max_wait: float = 86400.0  # the longest temporary lockout
    permanent_after: int = 3  # the lockout that becomes permanent; 0: never

    def lock_seconds(self, lockouts: int) -> float:
        """How long the ``lockouts``-th temporary lockout lasts: the window, doubled each time, capped."""
        return min(self.window * 2 ** (lockouts - 1), self.max_wait)

    def reserve(self, session: Session, application_id: int, user_id: str) -> int:
        """Check the user id's budget (429 too_many_attempts, 423 account_locked) and reserve one attempt of it;
        the reservation's id, for ``decide`` or ``release``."""
        guard = guards.locked(session, application_id, user_id)
        now = datetime.now(UTC)
        if self.max_failures > 0:
            if guard.locked_permanently_at is not None:
                raise ApiError(423, "account_locked", "locked after repeated failed attempts; an administrator "
                               "must unlock it")
            if guard.locked_until is not None and guard.locked_until > now:
                wait = math.ceil((guard.locked_until - now).total_seconds())
                raise ApiError(429, "too_many_attempts", "too many failed attempts; try again later",
                               {"Retry-After": str(max(wait, 1))})
            in_flight = attempts.pending_since(session, application_id, user_id,
                                               now - timedelta(seconds=PENDING_SECONDS))
            if self._failures(guard, now) + in_flight >= self.max_failures:
                raise ApiError(429, "too_many_attempts", "too many attempts at once; try again later",
                               {"Retry-After": "1"})
        return attempts.reserve(session, application_id, user_id)

    def decide(self, session: Session, application_id: int, user_id: str, reservation: int, matched: bool,
               distance: float | None) -> Lock | None:
        """Record the decision of a reserved attempt and move the budget; the lock it sets, if any."""
        guard = guards.locked(session, application_id, user_id)
        attempts.decide(session, reservation, matched, distance)
        now = datetime.now(UTC)
        if matched:
            guard.failures, guard.lockouts, guard.locked_until = 0, 0, None
            return None
        if self.max_failures <= 0:
            return None
        guard.failures = self._failures(guard, now) + 1
        guard.updated_at = now
        if guard.failures < self.max_failures:
            return None
        guard.failures = 0
        guard.lockouts += 1
        if self.permanent_after and guard.lockouts >= self.permanent_after:
            guard.locked_permanently_at = now
            return Lock(guard.lockouts, None)
        guard.locked_until = now + timedelta(seconds=self.lock_seconds(guard.lockouts))
        return Lock(guard.lockouts, guard.locked_until)

    @staticmethod
    def release(session: Session, reservation: int) -> None:
        """Drop a reservation whose request ended without a decision."""
        attempts.cancel(session, reservation)

    @staticmethod
    def unlock(session: Session, application_id: int, user_id: str) -> bool:
        """Lift every lock and count of the user id; whether it was locked."""
        guard = guards.locked(session, application_id, user_id)
        was_locked = guard.locked_permanently_at is not None or (
            guard.locked_until is not None and guard.locked_until > datetime.now(UTC))
        guard.failures, guard.lockouts, guard.locked_until, guard.locked_permanently_at = 0, 0, None, None
        return was_locked

    def _failures(self, guard: AccountGuard, now: datetime) -> int:
        """The guard's failures that still count: none once the last one is older than the window."""
        if guard.failures and guard.updated_at < now - timedelta(seconds=self.window):
            return 0
        return guard.failures
