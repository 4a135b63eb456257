"""Rate limits (flask-limiter): per application once authenticated, failed authentications per address.

A request without a valid API key never reaches the per-application limit (authn answers 401
first), so the key check has a limit of its own: each client address may fail it
FACEAUTH_AUTH_FAILURE_RATE_LIMIT times (20 per minute); past that, every request it makes to an
endpoint that needs a key is answered 429 before any key is looked at, so that guessing keys gets
nowhere and a right guess cannot be told from a wrong one until the window ends.

Public endpoints (health, JWKS, docs) are not limited: probes must always get through. Counts live
in FACEAUTH_RATE_LIMIT_STORAGE_URI. The default in-memory storage counts per worker process, each
worker allowing the whole limit, so gunicorn refuses to start it with more than one worker unless
FACEAUTH_RATE_LIMIT_ALLOW_PER_WORKER says so (development); production shares Redis or Memcached
between workers and replicas. When that storage cannot be reached, each worker counts in memory
until it is back, rather than failing every request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, Response, g
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, RateLimiter

from faceauth_auth.authn import is_public
from faceauth_auth.config import Settings
from faceauth_auth.errors import ApiError, error_response

KEY_PREFIX = "faceauth"
log = logging.getLogger(__name__)
T = TypeVar("T")


class RateLimitStorageError(RuntimeError):
    """The configured storage would not count what the limits promise (gunicorn prints the message and exits)."""


def per_worker(storage_uri: str) -> bool:
    """Whether the storage keeps its counts in each process's memory."""
    return storage_uri.partition("://")[0].lower() == "memory"


def check_storage(storage_uri: str, workers: int, allow_per_worker: bool) -> None:
    """Refuse in-memory counts shared by nobody when several workers would each allow the whole limit."""
    if workers > 1 and per_worker(storage_uri) and not allow_per_worker:
        raise RateLimitStorageError(
            f"FACEAUTH_RATE_LIMIT_STORAGE_URI is {storage_uri}, which counts in each worker process, but "
            f"{workers} workers are configured (FACEAUTH_WORKERS): every one of them would allow the whole rate "
            "limit and the whole failed-authentication limit. Point FACEAUTH_RATE_LIMIT_STORAGE_URI at Redis "
            "(redis://host:6379) or Memcached, run one worker, or, for development only, set "
            "FACEAUTH_RATE_LIMIT_ALLOW_PER_WORKER=true")


def _client_key() -> str:
    """Only authenticated requests get this far (authn refuses the others), so they all have a client."""
    return f"application:{g.client.application_id}"


class FailedAuthentications:
    """Failed API key checks per client address (``request.remote_addr``, after FACEAUTH_TRUSTED_PROXY_HOPS)."""

    def __init__(self, limiter: Limiter, limit: str) -> None:
        self._limiter = limiter
        self.limit: RateLimitItem = parse(limit)
        self._fallback = FixedWindowRateLimiter(MemoryStorage())

    @staticmethod
    def _identifiers() -> tuple[str, str, str]:
        return KEY_PREFIX, "failed-authentication", f"address:{get_remote_address()}"

    def _count(self, operation: Callable[[RateLimiter], T]) -> T:
        try:
            return operation(self._limiter.limiter)
        except Exception:  # any storage error, as flask-limiter catches them: count in this process meanwhile
            log.warning("rate limit storage unreachable; counting failed authentications in memory")
            return operation(self._fallback)

    def check(self) -> None:
        """429 when this address has used up its failed authentications."""
        if not self._count(lambda strategy: strategy.test(self.limit, *self._identifiers())):
            reset = self._count(lambda strategy: strategy.get_window_stats(self.limit, *self._identifiers()))
            raise ApiError(429, "rate_limited", "too many failed authentications from this address",
                           {"Retry-After": str(max(math.ceil(reset.reset_time - time.time()), 1))})

    def hit(self) -> None:
        """Count one failed authentication of this address."""
        self._count(lambda strategy: strategy.hit(self.limit, *self._identifiers()))


def create_limiter(settings: Settings) -> Limiter:
    """The per-application limiter, not yet hooked into an app (``init_app``, after authn's hook)."""
    return Limiter(_client_key, default_limits=[settings.rate_limit], default_limits_exempt_when=is_public,
                   storage_uri=settings.rate_limit_storage_uri, key_prefix=KEY_PREFIX,
                   in_memory_fallback_enabled=not per_worker(settings.rate_limit_storage_uri))


def init_app(app: Flask, limiter: Limiter) -> Limiter:
    """Register after authn: the limit is per application, which authn has established by then."""
    limiter.init_app(app)

    def exceeded(error: RateLimitExceeded) -> Response:
        current = limiter.current_limit
        wait = math.ceil(current.reset_at - time.time()) if current is not None else 1
        return error_response(429, "rate_limited", f"rate limit exceeded: {error.description}",
                              {"Retry-After": str(max(wait, 1))})

    app.register_error_handler(RateLimitExceeded, exceeded)
    return limiter
