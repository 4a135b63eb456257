"""Load shedding: at most FACEAUTH_MAX_INFLIGHT face requests are in progress at once per worker process.

gunicorn's threaded worker accepts every connection it can and queues it without bound, so past
capacity each request would wait longer than the one before until clients time out. Instead, a face
request (a view marked ``limited``) that finds no free slot within FACEAUTH_ADMISSION_WAIT seconds
is refused at once with 503 ``overloaded`` and ``Retry-After``: clients back off and a load balancer
can try another replica. The check runs before the API key's and reads neither the upload nor the
database, so a refusal costs almost nothing; the worker needs more threads than slots
(FACEAUTH_THREADS) for the spare ones to do the refusing and to keep health checks answering.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, g, request

from faceauth_auth import metrics
from faceauth_auth.config import Settings
from faceauth_auth.errors import ApiError

View = TypeVar("View", bound=Callable[..., object])
_LIMITED = "faceauth_limited"
RETRY_AFTER = "1"  # seconds; at capacity a slot frees up every few hundred milliseconds


def limited(view: View) -> View:
    """Mark a view that runs the face pipeline: each of its requests needs a slot."""
    setattr(view, _LIMITED, True)
    return view


class Admission:
    """The slots of one worker process, shared by its request threads."""

    def __init__(self, max_inflight: int, wait: float) -> None:
        if max_inflight < 1 or wait < 0:
            raise ValueError("FACEAUTH_MAX_INFLIGHT must be at least 1 and FACEAUTH_ADMISSION_WAIT at least 0")
        self._slots = threading.BoundedSemaphore(max_inflight)
        self._wait = wait

    def enter(self) -> None:
        """Take a slot, waiting a little for one; 503 overloaded when none frees up in time."""
        if not self._slots.acquire(timeout=self._wait):
            metrics.requests_shed.inc()
            raise ApiError(503, "overloaded", "too many requests in progress; try again shortly",
                           {"Retry-After": RETRY_AFTER})
        metrics.face_requests_in_flight.inc()

    def leave(self) -> None:
        metrics.face_requests_in_flight.dec()
        self._slots.release()


def init_app(app: Flask, settings: Settings) -> None:
    """Register right after the request id, before the API key check."""
    admission = Admission(settings.max_inflight, settings.admission_wait)

    def admit() -> None:
        if getattr(current_app.view_functions.get(request.endpoint or ""), _LIMITED, False):
            admission.enter()
            g.admitted = True

    def release(_error: BaseException | None) -> None:
        if g.pop("admitted", False):
            admission.leave()

    app.before_request(admit)
    app.teardown_request(release)
