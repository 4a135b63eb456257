"""Per-user lockout: after ``max_failures`` failed face logins within ``window`` seconds, refuse more.

A success clears the count. The lock lifts by itself once enough failures have left the window;
refused attempts are not recorded, so waiting always helps. Unknown user ids are counted like
known ones, so the lockout does not reveal which ids exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from faceauth_auth.errors import ApiError
from faceauth_auth.repositories import attempts


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int
    window: float  # seconds

    def retry_after(self, failures: list[datetime], now: datetime) -> float | None:
        """Seconds until a login may be tried again given the failures in the window (oldest first), or None."""
        if self.max_failures <= 0 or len(failures) < self.max_failures:
            return None
        # Once this failure leaves the window, fewer than max_failures remain in it.
        unlocks_at = failures[-self.max_failures] + timedelta(seconds=self.window)
        return max((unlocks_at - now).total_seconds(), 0.0) or None

    def check(self, session: Session, application_id: int, user_id: str) -> None:
        """Raise 429 too_many_attempts (with Retry-After) while the user is locked out."""
        now = datetime.now(UTC)
        failures = attempts.failures_since(session, application_id, user_id, now - timedelta(seconds=self.window))
        wait = self.retry_after(failures, now)
        if wait is not None:
            raise ApiError(429, "too_many_attempts", "too many failed logins; try again later",
                           {"Retry-After": str(math.ceil(wait))})
