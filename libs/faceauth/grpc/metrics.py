"""Prometheus metrics of a model server, exported over HTTP on their own port.

Each server gets its own registry rather than the global one, so several servers can live in one
process (tests, benchmarks) without clashing; process metrics (CPU, memory) are added to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    start_http_server,
)

# A detector call on 2 CPU cores takes ~20 ms, a queued one up to a few hundred.
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The collectors every faceauth gRPC server exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.request_duration = Histogram(
            "faceauth_grpc_request_duration_seconds", "Time to answer a gRPC call, by method.",
            ["method"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge(
            "faceauth_grpc_in_flight_requests", "gRPC calls being answered now, by method.",
            ["method"], registry=self.registry)
        self.errors = Counter(
            "faceauth_grpc_errors_total", "gRPC calls that ended with a status other than OK.",
            ["method", "code"], registry=self.registry)
        self.batch_size = Histogram(
            "faceauth_batch_size", "Items per model call made by the dynamic batcher.",
            ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge(
            "faceauth_batch_queue_depth", "Items waiting in the dynamic batcher's queue.",
            ["model"], registry=self.registry)
        self.expired = Counter(
            "faceauth_batch_expired_total", "Queued items dropped because their caller's deadline passed.",
            ["model"], registry=self.registry)

    def batch_observer(self, model: str) -> BatchMetrics:
        """What a DynamicBatcher for ``model`` reports to."""
        return BatchMetrics(self, model)

    def serve(self, port: int, address: str) -> WSGIServer:
        """Start the /metrics endpoint in a daemon thread; ``port`` 0 picks a free one."""
        server, _ = start_http_server(port, address, registry=self.registry)
        return server


@dataclass(frozen=True)
class BatchMetrics:
    """Implements batcher.BatchObserver on top of Metrics."""

    metrics: Metrics
    model: str

    def batch_size(self, size: int) -> None:
        self.metrics.batch_size.labels(self.model).observe(size)

    def queue_depth(self, depth: int) -> None:
        self.metrics.queue_depth.labels(self.model).set(depth)

    def expired(self, count: int) -> None:
        self.metrics.expired.labels(self.model).inc(count)
