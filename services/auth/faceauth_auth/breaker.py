"""The failure-rate breaker of each application: spraying one try at each of many user ids is never
locked per user, so an application whose face decisions fail far more than usual stops deciding.

When, over the last ``window`` seconds, an application had at least ``max_failures`` failed face
decisions (login and verify) and they were at least ``min_ratio`` of its decisions, its face logins
and verifies answer 503 ``login_suspended`` (Retry-After: the window) until the rate drops; every
refusal is counted in ``faceauth_breaker_refusals_total`` and the FaceauthLoginBreakerOpen alert
fires. It trades availability for safety: an attacker able to spray can also suspend logins, which
operators see at once and can answer (revoke the key, raise the limits, ``max_failures`` 0 for off).
The count is read from the database at most once a second per application and worker.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from faceauth_auth import metrics
from faceauth_auth.errors import ApiError
from faceauth_auth.repositories import attempts

CHECK_INTERVAL = 1.0  # seconds a worker reuses an application's verdict


@dataclass
class FailureBreaker:
    max_failures: int  # 0: off
    window: float  # seconds
    min_ratio: float = 0.5
    _verdicts: dict[int, tuple[float, bool]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, session: Session, application_id: int, application: str) -> None:
        """Raise 503 login_suspended while the application's breaker is open."""
        if self.max_failures <= 0:
            return
        if self._open(session, application_id):
            metrics.breaker_refusals.labels(application).inc()
            raise ApiError(503, "login_suspended", "face decisions of this application are suspended after an "
                           "unusual rate of failures; try again later", {"Retry-After": str(round(self.window))})

    def _open(self, session: Session, application_id: int) -> bool:
        now = time.monotonic()
        with self._lock:
            cached = self._verdicts.get(application_id)
        if cached is not None and now - cached[0] < CHECK_INTERVAL:
            return cached[1]
        failed, decided = attempts.outcomes_since(session, application_id,
                                                  datetime.now(UTC) - timedelta(seconds=self.window))
        is_open = failed >= self.max_failures and failed >= self.min_ratio * decided
        with self._lock:
            self._verdicts[application_id] = (now, is_open)
        return is_open
