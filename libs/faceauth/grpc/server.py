"""Server bootstrap: one grpc.server with health, metrics, optional reflection and a graceful shutdown.

The port opens before the model loads, so Kubernetes probes get NOT_SERVING (not "connection
refused") while loading; SERVING follows the warm-up. On SIGTERM the server turns NOT_SERVING,
refuses new calls, lets in-flight calls finish within the grace period, stops the model and exits 0.

With TLS (faceauth.grpc.tls) the gRPC port accepts TLS only, with client certificates when a client CA
is set. Kubelet's gRPC probes speak plaintext and present no certificate, so a health port
(``FACEAUTH_GRPC_HEALTH_PORT``) can be opened beside it: a server of its own, plaintext, with nothing but
grpc.health.v1, sharing the main server's health statuses. It tells no more than whether the pod serves.
"""

from __future__ import annotations

import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Protocol
from wsgiref.simple_server import WSGIServer

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from faceauth.grpc import MAX_MESSAGE_BYTES
from faceauth.grpc.interceptor import CallInterceptor
from faceauth.grpc.metrics import Metrics
from faceauth.grpc.settings import ServingSettings

log = logging.getLogger(__name__)

# How soon the main loop notices SIGTERM; the drain that follows takes far longer.
_SIGNAL_POLL_SECONDS = 0.2

_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Fail loudly when the port is taken instead of silently sharing it with another process.
    ("grpc.so_reuseport", 0),
    # Clients balance over the pods behind a headless Service but re-resolve its DNS name only when a
    # connection ends; ending connections every few minutes lets new pods get their share.
    ("grpc.max_connection_age_ms", 5 * 60_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
    # Accept the keepalive pings faceauth.grpc.client sends, so dead connections are noticed.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


class ModelServicer(Protocol):
    """A gRPC servicer whose model loads after the server started listening."""

    service_name: str  # full proto name, e.g. "faceauth.v1.DetectorService"

    def register(self, server: grpc.Server) -> None:
        """Add the servicer's handlers to ``server``."""

    def load(self) -> None:
        """Load and warm up the model; calls before that end with UNAVAILABLE."""

    def close(self) -> None:
        """Stop background work once no call is left."""


class ModelServer:
    """The gRPC server around one ModelServicer, plus its health and metrics endpoints (and reflection if asked)."""

    def __init__(self, servicer: ModelServicer, settings: ServingSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._servicer = servicer
        self.health = health.HealthServicer()
        # Calls beyond the worker threads wait in the executor, before any check; this backstop keeps
        # that wait finite in a storm, well above what the batcher's queue lets through.
        self.server = grpc.server(ThreadPoolExecutor(settings.workers, thread_name_prefix="grpc"),
                                  interceptors=[CallInterceptor(metrics)], options=_OPTIONS,
                                  maximum_concurrent_rpcs=4 * settings.workers)
        servicer.register(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if settings.reflection:  # FACEAUTH_GRPC_REFLECTION; off by default (faceauth.grpc.settings)
            reflection.enable_server_reflection(
                (servicer.service_name, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        address = f"{settings.bind_address}:{settings.port}"
        self.port: int = (self.server.add_insecure_port(address) if settings.tls is None
                          else self.server.add_secure_port(address, settings.tls.credentials()))
        self.health_server: grpc.Server | None = None
        self.health_port: int | None = None
        if settings.health_port is not None:
            self.health_server = grpc.server(ThreadPoolExecutor(4, thread_name_prefix="grpc-health"),
                                             options=_OPTIONS, maximum_concurrent_rpcs=16)
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
            self.health_port = self.health_server.add_insecure_port(
                f"{settings.bind_address}:{settings.health_port}")
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._metrics_http: WSGIServer | None = None

    @property
    def metrics_port(self) -> int:
        if self._metrics_http is None:
            raise RuntimeError("the server has not started")
        return int(self._metrics_http.server_port)

    def start(self) -> None:
        """Listen for calls (NOT_SERVING so far) and serve /metrics."""
        self.server.start()
        if self.health_server is not None:
            self.health_server.start()
        self._metrics_http = self.metrics.serve(self.settings.metrics_port, self.settings.metrics_address)
        log.info("listening", extra={"port": self.port, "metrics_port": self.metrics_port,
                                     "health_port": self.health_port, "tls": self.settings.tls is not None,
                                     "mutual_tls": self.settings.tls is not None and self.settings.tls.mutual})

    def load(self) -> None:
        """Load and warm up the model, then report SERVING."""
        started = time.perf_counter()
        self._servicer.load()
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"grpc_service": self._servicer.service_name, "port": self.port,
                                   "load_seconds": round(time.perf_counter() - started, 2)})

    def stop(self) -> None:
        """NOT_SERVING, refuse new calls, drain in-flight ones within the grace period, stop the model."""
        self.health.enter_graceful_shutdown()
        grace = self.settings.grace_seconds
        stopped = [self.server.stop(grace)]
        if self.health_server is not None:
            stopped.append(self.health_server.stop(grace))
        for event in stopped:
            event.wait(grace + 5)
        self._servicer.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        log.info("stopped")

    def _set_health(self, status: int) -> None:
        for name in ("", self._servicer.service_name):
            self.health.set(name, status)


def serve(servicer: ModelServicer, settings: ServingSettings, metrics: Metrics) -> int:
    """A server process's whole life: listen, load, serve until SIGTERM or SIGINT, drain; the exit code."""
    received: list[str] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        # Only a list append: a handler that takes a lock the main thread may hold can deadlock.
        received.append(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    server = ModelServer(servicer, settings, metrics)
    server.start()
    try:
        server.load()
    except Exception:
        log.exception("could not load the model")
        server.stop()
        return 1
    while not received:
        time.sleep(_SIGNAL_POLL_SECONDS)
    log.info("received %s; draining", received[0])
    server.stop()
    return 0
