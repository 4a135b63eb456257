"""The Flask app factory: wires settings, database, gRPC clients, token keys and the blueprints.

``create_app`` is the API (public port); ``create_metrics_app`` the Prometheus metrics of the same
process, for the metrics port; ``by_port`` joins them into what gunicorn serves (wsgi.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from faceauth.grpc.client import DetectorClient, EmbedderClient
from faceauth_auth import (
    admission,
    authn,
    errors,
    liveness,
    metrics,
    migrate,
    modelbounds,
    observability,
    ratelimit,
    templatecrypto,
)
from faceauth_auth.api import audit, auth, challenges, demo, docs, faces, ops, users, wellknown
from faceauth_auth.breaker import FailureBreaker
from faceauth_auth.config import Settings
from faceauth_auth.context import EXTENSION, Services
from faceauth_auth.db import Database, create_engine
from faceauth_auth.lockout import LockoutPolicy
from faceauth_auth.pipeline import FacePipeline
from faceauth_auth.quality import QualityPolicy
from faceauth_auth.tokens import TokenIssuer, load_key

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def create_app(settings: Settings | None = None, *, prepare: bool = True) -> Flask:
    """A ready app; ``prepare`` migrates the database first (gunicorn_conf does that once, in the master)."""
    settings = settings or Settings.from_env()
    templates = templatecrypto.from_settings(settings)  # refuses to start without a key unless explicitly off
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size,
                           pool_timeout=settings.db_pool_timeout, statement_timeout=settings.db_statement_timeout)
    if prepare:
        migrate.prepare(settings, engine)
    published = [path for path in (settings.jwt_next_key_file, settings.jwt_previous_key_file) if path is not None]
    tokens = TokenIssuer(load_key(settings.jwt_current_key_file), [load_key(path) for path in published],
                         settings.jwt_issuer, settings.token_lifetime)
    pipeline = FacePipeline(DetectorClient(settings.detector_target, settings.grpc_timeout, tls=settings.grpc_tls),
                            EmbedderClient(settings.embedder_target, settings.grpc_timeout, tls=settings.grpc_tls),
                            QualityPolicy(settings.min_face_size, settings.min_sharpness), settings.model_info_ttl,
                            modelbounds.load(settings.models_lock_file))

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    if settings.trusted_proxy_hops > 0:
        # request.remote_addr becomes the address the nearest trusted proxy saw, not the proxy's own.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = Services(settings, Database(engine, vector_search=not templates.encrypting), pipeline,
                                         tokens, LockoutPolicy(settings.lockout_max_failures, settings.lockout_window,
                                                               settings.lockout_max_wait,
                                                               settings.lockout_permanent_after),
                                         templates, FailureBreaker(settings.breaker_max_failures,
                                                                   settings.breaker_window, settings.breaker_min_ratio))
    # Order matters: request id first, then admission (a refusal must cost nothing), then the API key (whose
    # failures are limited per address), then the rate limit (which is per application).
    observability.init_app(app)
    admission.init_app(app, settings)
    limiter = ratelimit.create_limiter(settings)
    authn.init_app(app, ratelimit.FailedAuthentications(limiter, settings.auth_failure_rate_limit))
    ratelimit.init_app(app, limiter)
    errors.register(app)
    app.register_error_handler(liveness.PresentationAttackError, liveness.render)  # answers like a mismatch
    for blueprint in (auth.bp, challenges.bp, faces.bp, users.bp, audit.bp, wellknown.bp, ops.bp, docs.bp):
        app.register_blueprint(blueprint)
    if settings.demo_enabled:
        app.register_blueprint(demo.bp)
    return app


def create_metrics_app(app: Flask) -> WSGIApplication:
    """``app``'s Prometheus metrics (every worker's, under gunicorn), as the metrics port serves them."""
    services: Services = app.extensions[EXTENSION]
    return metrics.wsgi_app(ops.template_counter(services.db))


def _local_port(environ: WSGIEnvironment) -> int | None:
    """The port the connection was accepted on: the kernel's word, not the Host header's."""
    connection = environ.get("gunicorn.socket")
    try:
        address = connection.getsockname() if connection is not None else None
    except OSError:
        return None
    # (host, port) for IPv4, (host, port, flow, scope) for IPv6; a str for a Unix socket.
    return address[1] if isinstance(address, tuple) else None


def by_port(public: WSGIApplication, private: WSGIApplication, private_port: int) -> WSGIApplication:
    """``private`` for connections accepted on ``private_port`` (gunicorn listens on both), ``public`` for the rest."""
    def dispatch(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        target = private if _local_port(environ) == private_port else public
        return target(environ, start_response)
    return dispatch
