"""The Flask app factory: wires settings, database, gRPC clients, token keys and the blueprints."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from faceauth.grpc.client import DetectorClient, EmbedderClient
from faceauth_auth import admission, authn, errors, migrate, observability, ratelimit, templatecrypto
from faceauth_auth.api import audit, auth, demo, docs, faces, ops, users, wellknown
from faceauth_auth.config import Settings
from faceauth_auth.context import EXTENSION, Services
from faceauth_auth.db import Database, create_engine
from faceauth_auth.lockout import LockoutPolicy
from faceauth_auth.pipeline import FacePipeline
from faceauth_auth.quality import QualityPolicy
from faceauth_auth.tokens import TokenIssuer, load_key


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
    pipeline = FacePipeline(DetectorClient(settings.detector_target, settings.grpc_timeout),
                            EmbedderClient(settings.embedder_target, settings.grpc_timeout),
                            QualityPolicy(settings.min_face_size, settings.min_sharpness), settings.model_info_ttl)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    if settings.trusted_proxy_hops > 0:
        # request.remote_addr becomes the address the nearest trusted proxy saw, not the proxy's own.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = Services(settings, Database(engine, vector_search=not templates.encrypting), pipeline,
                                         tokens, LockoutPolicy(settings.lockout_max_failures, settings.lockout_window),
                                         templates)
    # Order matters: request id first, then admission (a refusal must cost nothing), then the API key, then
    # the rate limit (which is per application).
    observability.init_app(app)
    admission.init_app(app, settings)
    authn.init_app(app)
    ratelimit.init_app(app, settings)
    errors.register(app)
    for blueprint in (auth.bp, faces.bp, users.bp, audit.bp, wellknown.bp, ops.bp, docs.bp):
        app.register_blueprint(blueprint)
    if settings.demo_enabled:
        app.register_blueprint(demo.bp)
    return app
