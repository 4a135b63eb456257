"""One server interceptor for what every call needs: request id, metrics and a JSON log line."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from faceauth import logs
from faceauth.grpc.metrics import Metrics

REQUEST_ID_KEY = "x-request-id"
_MAX_REQUEST_ID = 128
# Kubernetes probes the health service every few seconds; their lines would drown the real calls.
_QUIET_PREFIX = "/grpc.health.v1."

log = logging.getLogger("faceauth.grpc.calls")

Behaviour = Callable[[Any, grpc.ServicerContext], Any]


def request_id_from(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The caller's x-request-id (trimmed), or a fresh one so every log line can be correlated."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and value.strip():
            return value.strip()[:_MAX_REQUEST_ID]
    return uuid.uuid4().hex


class CallInterceptor(grpc.ServerInterceptor):
    """Wraps unary-unary handlers; streaming ones (health Watch, reflection) pass through untouched."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method
        request_id = request_id_from(handler_call_details.invocation_metadata)
        behaviour: Behaviour = handler.unary_unary

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            # Runs in the worker thread that answers the call, so the context variable sticks.
            return self._observe(behaviour, request, context, method, request_id)

        return grpc.unary_unary_rpc_method_handler(observed, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)

    def _observe(self, behaviour: Behaviour, request: Any, context: grpc.ServicerContext, method: str,
                 request_id: str) -> Any:
        token = logs.request_id.set(request_id)
        in_flight = self._metrics.in_flight.labels(method)
        in_flight.inc()
        started = time.perf_counter()
        try:
            return behaviour(request, context)
        except Exception:
            if context.code() is None:  # not an abort(): a bug, so hide the details from the caller
                log.exception("unhandled error", extra={"method": method})
                context.abort(grpc.StatusCode.INTERNAL, "internal error")
            raise
        finally:
            elapsed = time.perf_counter() - started
            in_flight.dec()
            code = context.code() or grpc.StatusCode.OK
            self._metrics.request_duration.labels(method).observe(elapsed)
            if code is not grpc.StatusCode.OK:
                self._metrics.errors.labels(method, code.name).inc()
            log.log(logging.DEBUG if method.startswith(_QUIET_PREFIX) else logging.INFO, "grpc call",
                    extra={"method": method, "code": code.name, "duration_ms": round(elapsed * 1000, 2),
                           "peer": context.peer()})
            logs.request_id.reset(token)
