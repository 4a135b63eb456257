"""Calls to the detector and embedder: timed, counted, and turned into HTTP answers when they fail.

Transport trouble (unreachable, overloaded, too slow) becomes 503 service_unavailable so clients
retry; INVALID_ARGUMENT carries the image decoder's reason, which becomes a 400 (not an image) or a
422 (an image we will not use) with the same code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from faceauth.grpc.status import ERROR_CODE_KEY
from faceauth_auth import metrics
from faceauth_auth.errors import ApiError

log = logging.getLogger(__name__)

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED})
# Decoder reasons meaning "this is not an image at all"; any other reason is an unusable image (422).
MALFORMED_IMAGE = frozenset({"empty_image", "unsupported_image", "corrupt_image"})


def _error_code(error: grpc.RpcError) -> str:
    for key, value in getattr(error, "trailing_metadata", lambda: None)() or ():
        if key == ERROR_CODE_KEY:
            return str(value)
    return "invalid_image"


def to_api_error(service: str, error: grpc.RpcError) -> ApiError:
    code: grpc.StatusCode = error.code()
    if code in RETRYABLE:
        return ApiError(503, "service_unavailable", f"the {service} is unavailable; try again shortly",
                        {"Retry-After": "1"})
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        reason = _error_code(error)
        return ApiError(400 if reason in MALFORMED_IMAGE else 422, reason, str(error.details()))
    return ApiError(502, "downstream_error", f"the {service} failed")


@contextmanager
def call(service: str) -> Iterator[None]:
    """Time the gRPC call made in the block; raise its failure as an ApiError."""
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    try:
        yield
    except grpc.RpcError as error:
        code = error.code()
        log.warning("downstream call failed", extra={"service": service, "code": code.name})
        metrics.downstream_errors.labels(service, code.name).inc()
        raise to_api_error(service, error) from None
    finally:
        metrics.downstream_duration.labels(service, code.name).observe(time.perf_counter() - started)
