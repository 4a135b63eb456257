"""The audit log over HTTP: what a request records, and ``GET /v1/audit`` for the calling application.

The listing leaves out distances and liveness scores, like every other answer of the API (a caller
able to read them could tune a forged face against the threshold); operators see them with
``python -m faceauth_auth audit list``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy.orm import Session

from faceauth_auth.authn import current_client
from faceauth_auth.context import services
from faceauth_auth.errors import ApiError
from faceauth_auth.models import AuditEvent
from faceauth_auth.repositories import audit
from faceauth_auth.repositories.audit import Actor, Event
from faceauth_auth.uploads import valid_user_id

bp = Blueprint("audit", __name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def record(session: Session, event: Event, outcome: str, *, user_id: str | None = None,
           distance: float | None = None, liveness_score: float | None = None, detail: str | None = None) -> None:
    """Append an event for the calling application, in ``session``'s transaction (the change's own)."""
    client = current_client()
    actor = Actor(client.key_id, request.remote_addr, g.get("request_id"))
    audit.record(session, event, outcome, application_id=client.application_id, actor=actor, user_id=user_id,
                 distance=distance, liveness_score=liveness_score, detail=detail)


def _invalid(name: str, expected: str) -> ApiError:
    return ApiError(400, "invalid_parameter", f"{name} must be {expected}")


def _integer(name: str, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise _invalid(name, f"an integer from {low} to {high}")
    return int(raw)


def _since() -> datetime | None:
    raw = request.args.get("since")
    if raw is None:
        return None
    try:
        return audit.parse_time(raw)
    except ValueError:
        raise _invalid("since", "an ISO 8601 date-time such as 2026-01-31T12:00:00Z") from None


def _event() -> Event | None:
    raw = request.args.get("event")
    if raw is None:
        return None
    try:
        return Event(raw)
    except ValueError:
        raise _invalid("event", "one of " + ", ".join(Event)) from None


def _public(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "time": event.created_at.isoformat(), "event": event.event,
            "user_id": event.external_user_id, "outcome": event.outcome, "api_key_id": event.api_key_id,
            "client_address": event.client_address, "request_id": event.request_id, "detail": event.detail}


@bp.get("/v1/audit")
def list_events() -> Response:
    user_id = request.args.get("user_id")
    wanted = audit.Filter(application_id=current_client().application_id,
                          user_id=valid_user_id(user_id) if user_id is not None else None,
                          event=_event(), since=_since(), before=_integer("before", 1, 2**63 - 1),
                          limit=_integer("limit", 1, MAX_LIMIT) or DEFAULT_LIMIT)
    with services().db.transaction() as session:
        events = audit.events(session, wanted)
    more = len(events) == wanted.limit
    return jsonify({"events": [_public(event) for event in events], "next_before": events[-1].id if more else None})
