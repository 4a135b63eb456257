"""Active liveness challenges: ``POST /v1/challenges`` issues one (faceauth_auth.challenges)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from faceauth_auth import challenges
from faceauth_auth.authn import current_client
from faceauth_auth.context import services
from faceauth_auth.errors import ApiError
from faceauth_auth.repositories import challenges as stored
from faceauth_auth.uploads import valid_user_id

bp = Blueprint("challenges", __name__)
log = logging.getLogger(__name__)


def _requested_user() -> str | None:
    """The ``user_id`` of the JSON or form body; None (a challenge for face-identify) when absent."""
    if request.mimetype == "application/json":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "the body must be a JSON object")
        if "user_id" not in body:
            return None
        return valid_user_id(body["user_id"])  # null included: 400
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        value = request.form.get("user_id")
        return None if value is None else valid_user_id(value)
    if not request.get_data():
        return None
    raise ApiError(415, "unsupported_media_type", "send application/json, a form, or no body")


@bp.post("/v1/challenges")
def create() -> tuple[Response, int]:
    user_id = _requested_user()
    svc = services()
    client = current_client()
    steps = challenges.random_steps()
    with svc.db.transaction() as session:
        challenge = stored.issue(session, challenges.new_id(), client.application_id, user_id, steps,
                                 svc.settings.challenge_lifetime)
    log.info("liveness challenge issued", extra={"application": client.application, "steps": " ".join(steps)})
    return jsonify({"challenge_id": challenge.id, "user_id": user_id, "steps": list(steps),
                    "expires_in": int(svc.settings.challenge_lifetime),
                    "frames": {"min": challenges.MIN_FRAMES, "max": challenges.MAX_FRAMES},
                    "turn_degrees": challenges.TURN_DEGREES}), 201
