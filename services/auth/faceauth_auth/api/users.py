"""Users and their enrolled faces; deleting removes the rows for good (right to erasure).

The audit log keeps the fact of a deletion, with the user id, but never biometric data.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify
from sqlalchemy.orm import Session

from faceauth_auth.api.audit import record
from faceauth_auth.authn import current_client
from faceauth_auth.context import services
from faceauth_auth.errors import ApiError
from faceauth_auth.models import User
from faceauth_auth.repositories import attempts, guards, users
from faceauth_auth.repositories.audit import Event
from faceauth_auth.uploads import valid_user_id

bp = Blueprint("users", __name__)
log = logging.getLogger(__name__)


def _user(session: Session, user_id: str) -> User:
    user = users.find(session, current_client().application_id, valid_user_id(user_id))
    if user is None:
        raise ApiError(404, "user_not_found", "no such user")
    return user


@bp.get("/v1/users/<user_id>")
def get_user(user_id: str) -> Response:
    with services().db.transaction() as session:
        user = _user(session, user_id)
        count = users.template_count(session, user)
    return jsonify({"user_id": user.external_id, "created_at": user.created_at.isoformat(), "face_count": count})


@bp.delete("/v1/users/<user_id>")
def delete_user(user_id: str) -> tuple[str, int]:
    client = current_client()
    with services().db.transaction() as session:
        user = _user(session, user_id)
        users.delete(session, user)
        attempts.delete_for_user(session, client.application_id, user.external_id)
        guards.delete_for_user(session, client.application_id, user.external_id)
        record(session, Event.USER_DELETED, "success", user_id=user.external_id)
    log.info("user deleted", extra={"application": client.application})
    return "", 204


@bp.get("/v1/users/<user_id>/faces")
def list_faces(user_id: str) -> Response:
    with services().db.transaction() as session:
        templates = users.templates(session, _user(session, user_id))
    return jsonify({"faces": [{"face_id": str(t.id), "created_at": t.created_at.isoformat(),
                               "model": {"name": t.model_name, "version": t.model_version,
                                         "dimensions": t.dimensions}} for t in templates]})


@bp.delete("/v1/users/<user_id>/faces/<face_id>")
def delete_face(user_id: str, face_id: str) -> tuple[str, int]:
    try:
        parsed = uuid.UUID(face_id)
    except ValueError:
        raise ApiError(404, "face_not_found", "no such face") from None
    with services().db.transaction() as session:
        user = _user(session, user_id)
        if not users.delete_template(session, user, parsed):
            raise ApiError(404, "face_not_found", "no such face")
        record(session, Event.FACE_DELETED, "success", user_id=user.external_id, detail=f"face {parsed}")
    log.info("face deleted", extra={"application": current_client().application, "face_id": face_id})
    return "", 204


@bp.get("/v1/users/<user_id>/lock")
def get_lock(user_id: str) -> Response:
    """The attempt budget of a user id, known or not (faceauth_auth.lockout)."""
    with services().db.transaction() as session:
        guard = guards.find(session, current_client().application_id, valid_user_id(user_id))
    now = datetime.now(UTC)
    until = guard.locked_until if guard and guard.locked_until and guard.locked_until > now else None
    permanent = bool(guard and guard.locked_permanently_at)
    return jsonify({"user_id": user_id, "locked": permanent or until is not None, "permanent": permanent,
                    "locked_until": until.isoformat() if until and not permanent else None,
                    "failures": guard.failures if guard else 0, "lockouts": guard.lockouts if guard else 0})


@bp.delete("/v1/users/<user_id>/lock")
def delete_lock(user_id: str) -> tuple[str, int]:
    """Lift a user id's lock (temporary or permanent) and its counts; audited."""
    client = current_client()
    with services().db.transaction() as session:
        was_locked = services().lockout.unlock(session, client.application_id, valid_user_id(user_id))
        record(session, Event.ACCOUNT_UNLOCKED, "success", user_id=user_id,
               detail="was locked" if was_locked else "was not locked")
    log.info("user unlocked", extra={"application": client.application})
    return "", 204
