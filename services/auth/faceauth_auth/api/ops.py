"""Operations endpoints: liveness and readiness, without an API key; and what the metrics port counts.

The Prometheus metrics are not served here but on FACEAUTH_METRICS_PORT (faceauth_auth.metrics).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, jsonify
from sqlalchemy.exc import SQLAlchemyError

from faceauth_auth.authn import public
from faceauth_auth.context import services
from faceauth_auth.db import Database
from faceauth_auth.errors import database_unavailable
from faceauth_auth.repositories import users

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
@public
def healthz() -> Response:
    """The process answers; says nothing about its dependencies (a restart would not fix those)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@public
def readyz() -> tuple[Response, int]:
    """Ready when the database answers and both gRPC services report SERVING."""
    svc = services()
    checks = svc.pipeline.readiness()
    try:
        svc.db.ping()
        checks["database"] = True
    except SQLAlchemyError:  # any database failure means "not ready"
        checks["database"] = False
    if all(checks.values()):
        return jsonify({"status": "ready", "checks": checks}), 200
    failing = ", ".join(name for name, ok in checks.items() if not ok)
    return jsonify({"error": {"code": "not_ready", "message": f"not ready: {failing}"}, "checks": checks}), 503


def template_counter(db: Database) -> Callable[[], dict[str, int]]:
    """Enrolled templates per model for faceauth_enrolled_templates, counted in the database at scrape time."""
    def count_templates() -> dict[str, int]:
        try:
            with db.transaction() as session:
                return users.template_counts(session)
        except SQLAlchemyError as error:
            if not database_unavailable(error):
                raise
            return {}  # still export the other metrics while the database is down
    return count_templates
