"""Prometheus metrics of the auth service, served on their own port (FACEAUTH_METRICS_PORT).

They include the distance behind every match decision and the liveness score of every judged
face, which the API never returns (a caller able to read them could tune a forged face against
the threshold), so /metrics is not on the API's port: gunicorn listens on both, and requests that
arrive on the metrics port reach ``wsgi_app`` alone (faceauth_auth.app.by_port). In Kubernetes only
Prometheus may reach that port (the chart's NetworkPolicy).

Under gunicorn every worker is a process, so prometheus_client runs in multi-process mode
(PROMETHEUS_MULTIPROC_DIR, set up by gunicorn_conf) and /metrics aggregates the workers' files. The
number of enrolled templates is read from the database at scrape time: it is the same for all
workers and survives restarts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# An auth call is a detector call plus an embedder call plus a few queries: ~0.1 s, up to seconds queued.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)
# Euclidean distances between unit vectors lie in [0, 2]; the thresholds sit near 0.35-0.4.
DISTANCE_BUCKETS = (0.2, 0.25, 0.3, 0.325, 0.35, 0.375, 0.4, 0.425, 0.45, 0.5, 0.6, 0.8, 1.0, 1.2)

http_duration = Histogram(
    "faceauth_http_request_duration_seconds", "Time to answer an HTTP request, by endpoint and status.",
    ["endpoint", "status"], buckets=LATENCY_BUCKETS)
login_outcomes = Counter(
    "faceauth_login_outcomes_total", "Face-login answers by outcome.", ["outcome"])
match_distance = Histogram(
    "faceauth_match_distance", "Distance behind each match decision: genuine (accepted) or impostor (rejected).",
    ["decision"], buckets=DISTANCE_BUCKETS)
liveness_score = Histogram(
    "faceauth_liveness_score", "Liveness score of each face judged at enrolment or login, by verdict at the "
    "model's threshold (live or spoof) and the application's policy.", ["verdict", "policy"],
    buckets=tuple(round(0.1 * step, 1) for step in range(1, 10)))
downstream_duration = Histogram(
    "faceauth_downstream_request_duration_seconds", "Time of calls to the detector and embedder, by status.",
    ["service", "code"], buckets=LATENCY_BUCKETS)
downstream_errors = Counter(
    "faceauth_downstream_errors_total", "Calls to the detector and embedder that did not end OK.",
    ["service", "code"])
breaker_refusals = Counter(
    "faceauth_breaker_refusals_total", "Face logins and verifies refused because the application's failure-rate "
    "breaker is open (faceauth_auth.breaker).", ["application"])
template_migrations = Counter(
    "faceauth_template_migrations_total", "Templates enrolled automatically under the primary embedding model "
    "after a match under a legacy one (a migration window), by legacy and primary model.", ["from_model", "to_model"])
requests_shed = Counter(
    "faceauth_requests_shed_total", "Face requests refused with 503 overloaded: no admission slot freed up in time.")
face_requests_in_flight = Gauge(
    "faceauth_face_requests_in_flight", "Face requests holding an admission slot now, summed over workers.",
    multiprocess_mode="livesum")


class TemplateCountCollector(Collector):
    """faceauth_enrolled_templates, counted in the database at scrape time."""

    def __init__(self, count: Callable[[], dict[str, int]]) -> None:
        self._count = count

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("faceauth_enrolled_templates", "Face templates stored, by embedding model.",
                                  labels=["model"])
        for model, count in self._count().items():
            gauge.add_metric([model], count)
        yield gauge


def exposition(count_templates: Callable[[], dict[str, int]]) -> tuple[bytes, str]:
    """The /metrics body and content type: this process's (or all workers') metrics and the template gauge."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        process_metrics = generate_latest(registry)
    else:
        process_metrics = generate_latest(REGISTRY)
    templates = CollectorRegistry()
    templates.register(TemplateCountCollector(count_templates))
    return process_metrics + generate_latest(templates), CONTENT_TYPE_LATEST


def wsgi_app(count_templates: Callable[[], dict[str, int]]) -> WSGIApplication:
    """The metrics port's whole WSGI application: GET /metrics, 404 for anything else."""
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "10")])
            return [b"not found\n"]
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Length", "0")])
            return [b""]
        body, content_type = exposition(count_templates)
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]
    return app
