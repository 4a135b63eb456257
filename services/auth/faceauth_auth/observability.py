"""Per-request plumbing: the request id (logged and forwarded to gRPC), an access log line, the latency histogram.

The id comes from the caller's X-Request-ID when it looks sane, so a request can be followed from
the app backend through auth to the detector and embedder (faceauth.grpc.client forwards it).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from faceauth import logs
from faceauth_auth import metrics

HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

log = logging.getLogger("faceauth_auth.access")


def _start() -> None:
    supplied = request.headers.get(HEADER, "")
    g.request_id = supplied if _SANE_ID.fullmatch(supplied) else uuid.uuid4().hex
    g.request_id_token = logs.request_id.set(g.request_id)
    g.started = time.perf_counter()


def _finish(response: Response) -> Response:
    elapsed = time.perf_counter() - g.started
    # The route's rule, not the path: user ids must not become label values.
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    metrics.http_duration.labels(endpoint, str(response.status_code)).observe(elapsed)
    response.headers[HEADER] = g.request_id
    level = logging.DEBUG if request.endpoint and request.endpoint.startswith("ops.") else logging.INFO
    log.log(level, "http request", extra={"method": request.method, "endpoint": endpoint,
                                          "status": response.status_code, "duration_ms": round(elapsed * 1000, 2)})
    return response


def _reset(_error: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        logs.request_id.reset(token)


def init_app(app: Flask) -> None:
    """Register first, so every other hook and handler already sees the request id."""
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_reset)
