"""Per-client rate limits (flask-limiter): per application once authenticated, per address before.

Public endpoints (health, metrics, JWKS, docs) are not limited: probes and scrapers must always get
through. Limits live in FACEAUTH_RATE_LIMIT_STORAGE_URI; the default in-memory storage counts per
worker process, so use Redis or Memcached to share the count between workers and replicas.
"""

from __future__ import annotations

import math
import time

from flask import Flask, Response, g
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from faceauth_auth.authn import is_public
from faceauth_auth.config import Settings
from faceauth_auth.errors import error_response


def _client_key() -> str:
    client = g.get("client")
    return f"application:{client.application_id}" if client is not None else f"address:{get_remote_address()}"


def init_app(app: Flask, settings: Settings) -> Limiter:
    limiter = Limiter(_client_key, default_limits=[settings.rate_limit], default_limits_exempt_when=is_public,
                      storage_uri=settings.rate_limit_storage_uri, key_prefix="faceauth")
    limiter.init_app(app)

    def exceeded(error: RateLimitExceeded) -> Response:
        current = limiter.current_limit
        wait = math.ceil(current.reset_at - time.time()) if current is not None else 1
        return error_response(429, "rate_limited", f"rate limit exceeded: {error.description}",
                              {"Retry-After": str(max(wait, 1))})

    app.register_error_handler(RateLimitExceeded, exceeded)
    return limiter
