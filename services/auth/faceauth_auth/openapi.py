"""The OpenAPI 3.1 description of the HTTP API, written by hand next to the code it describes.

tests/test_auth_api.py checks that it names exactly the routes the app serves.
"""

from __future__ import annotations

from typing import Any

from faceauth_auth.repositories.audit import Event
from faceauth_auth.uploads import USER_ID, USER_ID_RULE

JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _ok(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


_USER_ID_SCHEMA = {"type": "string", "pattern": f"^{USER_ID.pattern}$", "description": USER_ID_RULE}


_CHALLENGE_ID = {"type": "string", "minLength": 1, "maxLength": 64,
                 "description": "an answered liveness challenge (POST /v1/challenges), sent with frames; "
                                "required under the liveness policy challenge (docs/security.md)"}
_FRAMES_NOTE = ("3-8 frames captured while the user follows the challenge's steps, in order; each must show "
                "the photo's face, and one usable face only")


def _upload(with_user: bool, challenge: bool = True) -> Schema:
    """A photo as multipart/form-data or as base64 in JSON, with a liveness challenge's answer if ``challenge``."""
    user = {"user_id": _USER_ID_SCHEMA} if with_user else {}
    required = ["user_id", "image"] if with_user else ["image"]
    form_answer = {"challenge_id": _CHALLENGE_ID, "frames": {
        "type": "array", "minItems": 3, "maxItems": 8, "description": _FRAMES_NOTE,
        "items": {"type": "string", "format": "binary"}}} if challenge else {}
    json_answer = {"challenge_id": _CHALLENGE_ID, "frames": {
        "type": "array", "minItems": 3, "maxItems": 8, "description": _FRAMES_NOTE + " (base64 each)",
        "items": {"type": "string", "contentEncoding": "base64", "minLength": 1}}} if challenge else {}
    return {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": required, "properties": {
            **user, "image": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP, <= 10 MiB"},
            **form_answer}}},
        JSON: {"schema": {"type": "object", "required": required, "properties": {
            **user, "image": {"type": "string", "contentEncoding": "base64", "minLength": 1,
                              "description": "base64 of a JPEG, PNG or WebP (a data: URL is accepted)"},
            **json_answer}}},
    }}


# Answers every photo endpoint may give besides its own.
_PHOTO_ERRORS = {
    "400": _error("Malformed request: missing_user_id, invalid_user_id, missing_image, empty_image, invalid_json, "
                  "invalid_image_encoding, unsupported_image, corrupt_image, invalid_challenge_id, invalid_frames "
                  "(challenge_id without 3-8 non-empty frames, or frames without challenge_id)"),
    "413": _error("payload_too_large: the body or the image is too large"),
    "415": _error("unsupported_media_type: send multipart/form-data or application/json"),
    "422": _error("The photo cannot be used: no_face, multiple_faces, face_too_small, face_too_blurry, "
                  "image_too_large (pixels), image_too_small"),
    "503": _error("overloaded (too many face requests in progress), service_unavailable (the detector or "
                  "embedder) or database_unavailable: unreachable or overloaded; retry after Retry-After"),
}
_KEY_ERRORS = {
    "401": _error("missing_api_key or invalid_api_key"),
    "429": _error("rate_limited: too many requests for this application, or too many failed authentications "
                  "from this address (Retry-After)"),
}
_USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": _USER_ID_SCHEMA}
_BAD_USER_ID = {"400": _error("invalid_user_id")}
_AUDIT_QUERY = [
    {"name": "user_id", "in": "query", "schema": _USER_ID_SCHEMA},
    {"name": "event", "in": "query", "schema": {"enum": list(Event)}},
    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"},
     "description": "ISO 8601; UTC when it has no offset"},
    {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1},
     "description": "next_before of the previous page"},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
]
_FACE_ID = {"name": "face_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


# What a face login or verify answers when the user id's attempt budget or the application's breaker says no.
_BUDGET_ERRORS: Schema = {
    "423": _error("account_locked: locked for good after repeated lockouts, until an operator unlocks it"),
    "429": _error("too_many_attempts: locked for a while after repeated failures (Retry-After), or rate_limited"),
    "503": _error("login_suspended: the application's failure-rate breaker is open (Retry-After); overloaded, "
                  "service_unavailable or database_unavailable (retry after Retry-After)"),
}


def _operation(tag: str, summary: str, description: str, responses: Schema, *, upload: bool | None = None,
               parameters: list[Schema] | None = None, secured: bool = True, challenge: bool = True,
               body: Schema | None = None) -> Schema:
    merged = {**(_PHOTO_ERRORS if upload is not None else {}), **(_BAD_USER_ID if parameters else {}),
              **(_KEY_ERRORS if secured else {}), **responses}
    operation: Schema = {"tags": [tag], "summary": summary, "description": description,
                         "responses": dict(sorted(merged.items()))}
    if upload is not None:
        operation["requestBody"] = _upload(upload, challenge)
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    if not secured:
        operation["security"] = []
    return operation


_SCHEMAS: Schema = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
    "Token": {"type": "object", "required": ["access_token", "token_type", "expires_in"], "properties": {
        "access_token": {"type": "string", "description": "JWT (ES256 or RS256); claims iss, aud (the "
                                                          "application), sub (user_id), iat, exp, jti, amr=[face]"},
        "token_type": {"const": "Bearer"}, "expires_in": {"type": "integer", "description": "seconds"}}},
    "Lock": {"type": "object", "required": ["user_id", "locked", "permanent", "locked_until", "failures", "lockouts"],
             "properties": {"user_id": {"type": "string"}, "locked": {"type": "boolean"},
                            "permanent": {"type": "boolean"},
                            "locked_until": {"type": ["string", "null"], "format": "date-time"},
                            "failures": {"type": "integer"}, "lockouts": {"type": "integer"}}},
    "Enrolled": {"type": "object", "required": ["user_id", "face_id", "model"], "properties": {
        "user_id": {"type": "string"}, "face_id": {"type": "string", "format": "uuid"}, "model": _ref("Model")}},
    "Model": {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "integer"},
                                               "dimensions": {"type": "integer"}}},
    "Verification": {"type": "object", "required": ["match", "confidence"], "properties": {
        "match": {"type": "boolean"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                       "description": "1 - distance / (2 * threshold), clipped; 0.5 at the threshold"}}},
    "Identification": {"type": "object", "required": ["match", "user_id", "confidence"], "properties": {
        "match": {"type": "boolean"}, "user_id": {"type": ["string", "null"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1}}},
    "Challenge": {"type": "object", "required": ["challenge_id", "user_id", "steps", "expires_in", "frames",
                                                 "turn_degrees"], "properties": {
        "challenge_id": {"type": "string", "description": "send it with the frames, once"},
        "user_id": {"type": ["string", "null"], "description": "the user it is for; null: for face-identify"},
        "steps": {"type": "array", "minItems": 2, "maxItems": 3, "items": {"enum": ["left", "right"]},
                  "description": "head turns to ask for, in order: the user's own left or right"},
        "expires_in": {"type": "integer", "description": "seconds it may be answered in"},
        "frames": {"type": "object", "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}}},
        "turn_degrees": {"type": "number", "description": "how far (yaw) a frame must be turned to count"}}},
    "Point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}},
    "Face": {"type": "object", "properties": {
        "box": {"type": "object", "properties": {k: {"type": "number"} for k in ("x_min", "y_min", "x_max", "y_max")}},
        "score": {"type": "number"},
        "landmarks": {"type": "object", "properties": {
            k: _ref("Point") for k in ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")}},
        "landmark_score": {"type": "number"}, "yaw_degrees": {"type": "number"},
        "quality": {"type": "object", "properties": {
            "usable": {"type": "boolean"},
            "reasons": {"type": "array", "items": {"enum": ["face_too_small", "face_too_blurry"]}},
            "sharpness": {"type": ["number", "null"], "description": "variance of the Laplacian of the 128 px "
                          "face crop; null when the detector did not measure it (an older detector)"}}}}},
    "Detection": {"type": "object", "properties": {
        "image": {"type": "object", "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}}},
        "faces": {"type": "array", "items": _ref("Face")}}},
    "User": {"type": "object", "properties": {"user_id": {"type": "string"},
                                              "created_at": {"type": "string", "format": "date-time"},
                                              "face_count": {"type": "integer"}}},
    "Faces": {"type": "object", "properties": {"faces": {"type": "array", "items": {"type": "object", "properties": {
        "face_id": {"type": "string", "format": "uuid"}, "created_at": {"type": "string", "format": "date-time"},
        "model": _ref("Model")}}}}},
    "Jwks": {"type": "object", "properties": {"keys": {"type": "array", "items": {"type": "object"}}}},
    "AuditEvents": {"type": "object", "required": ["events", "next_before"], "properties": {
        "events": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "time": {"type": "string", "format": "date-time"},
            "event": {"enum": list(Event)}, "user_id": {"type": ["string", "null"]},
            "outcome": {"type": "string", "description": "match or mismatch for decisions, success otherwise"},
            "api_key_id": {"type": ["string", "null"]}, "client_address": {"type": ["string", "null"]},
            "request_id": {"type": ["string", "null"]},
            "detail": {"type": ["string", "null"], "description": "the face or key concerned"}}}},
        "next_before": {"type": ["integer", "null"], "description": "pass as before for the next page"}}},
}

_PATHS: Schema = {
    "/auth/face-register": {"post": _operation(
        "auth", "Enrol a face", "Stores the embedding of the photo's one usable face for user_id (created if "
        "new). No photo is kept. A user who already has a face gets another only with proof of presence: the "
        "new face matches an enrolled one, or the request carries the user's token from a face login in the "
        "X-Faceauth-User-Token header.",
        {"201": _ok("Enrolled", _ref("Enrolled")),
         "403": _error("proof_required: the user has a face, the new one does not match it and no token of the "
                       "user came with it"),
         "409": _error("too_many_faces: the user has the maximum number of faces"),
         "422": _error("The photo cannot be used: no_face, multiple_faces, face_too_small, face_too_blurry, "
                       "image_too_large (pixels), image_too_small, or spoof_detected (the application's "
                       "liveness policy is enforce-passive and the face looks like a presentation attack, or a "
                       "liveness challenge was sent and failed; enrolment never requires one)")}, upload=True)},
    "/auth/face-login": {"post": _operation(
        "auth", "Log in with a face", "Compares the photo's face with the user's enrolled faces (same model only) "
        "and returns a short-lived access token on a match. An unknown user, or one with no face a served model "
        "can compare with, gets the same 401 as a mismatch. A match under an older model kept for a migration "
        "window also enrols the face under the current model.",
        {"200": _ok("Matched", _ref("Token")),
         "401": _error("face_mismatch (also for an unknown user, and for a face the liveness policy refuses: "
                       "a low passive score under enforce-passive, a missing or failed challenge under challenge; "
                       "the answer is the same), missing_api_key, invalid_api_key"),
         **_BUDGET_ERRORS}, upload=True)},
    "/auth/face-verify": {"post": _operation(
        "auth", "Verify a face (1:1)", "Is this the user? No token is issued. A match under an older model kept "
        "for a migration window also enrols the face under the current model.",
        {"200": _ok("Decision; a face the liveness policy refuses is match false, confidence 0",
                    _ref("Verification")),
         "404": _error("user_not_found (also for a user with no face a served model can compare with)"),
         **_BUDGET_ERRORS}, upload=True)},
    "/auth/face-identify": {"post": _operation(
        "auth", "Identify a face (1:N)", "Which enrolled user of this application, if any, is in the photo. A "
        "liveness challenge for identify is issued without a user_id.",
        {"200": _ok("Decision; a face the liveness policy refuses is match false, user_id null",
                    _ref("Identification"))}, upload=False)},
    "/v1/faces/detect": {"post": _operation(
        "faces", "Detect faces", "Boxes, five landmarks and a quality verdict for every face in the photo.",
        {"200": _ok("Faces found", _ref("Detection"))}, upload=False, challenge=False)},
    "/v1/challenges": {"post": _operation(
        "auth", "Issue a liveness challenge", "A one-time challenge for user_id (none: for face-identify) of "
        "this application: head turns to capture in 3-8 frames, answered with challenge_id and frames on the "
        "next face request within expires_in seconds. Used or not, it serves once; docs/security.md.",
        {"201": _ok("Issued", _ref("Challenge")),
         "400": _error("invalid_user_id, invalid_json"),
         "415": _error("unsupported_media_type: send application/json, a form, or no body")},
        body={"required": False, "content": {JSON: {"schema": {"type": "object", "required": [], "properties": {
            "user_id": _USER_ID_SCHEMA}}}}})},
    "/v1/users/{user_id}": {
        "get": _operation("users", "Get a user", "", {"200": _ok("The user", _ref("User")),
                                                      "404": _error("user_not_found")}, parameters=[_USER_ID]),
        "delete": _operation("users", "Delete a user", "Removes the user, every enrolled face and the login "
                             "history (right to erasure).", {"204": {"description": "Deleted"},
                                                             "404": _error("user_not_found")},
                             parameters=[_USER_ID]),
    },
    "/v1/users/{user_id}/lock": {
        "get": _operation("users", "A user id's attempt budget", "Failures, lockouts and whether the user id (known "
                          "or not) is locked.", {"200": _ok("The lock", _ref("Lock"))}, parameters=[_USER_ID]),
        "delete": _operation("users", "Unlock a user id", "Lifts a temporary or permanent lock and clears the "
                             "counts; audited.", {"204": {"description": "Unlocked"}}, parameters=[_USER_ID]),
    },
    "/v1/users/{user_id}/faces": {"get": _operation(
        "users", "List a user's faces", "", {"200": _ok("Faces", _ref("Faces")), "404": _error("user_not_found")},
        parameters=[_USER_ID])},
    "/v1/users/{user_id}/faces/{face_id}": {"delete": _operation(
        "users", "Delete one face", "", {"204": {"description": "Deleted"},
                                         "404": _error("user_not_found or face_not_found")},
        parameters=[_USER_ID, _FACE_ID])},
    "/v1/audit": {"get": _operation(
        "audit", "The audit log", "This application's enrolments, login, verify and identify decisions, "
        "deletions and API key events, newest first. Distances and liveness scores are left out.",
        {"200": _ok("Events", _ref("AuditEvents")),
         "400": _error("invalid_parameter or invalid_user_id")}, parameters=_AUDIT_QUERY)},
    "/.well-known/jwks.json": {"get": _operation(
        "tokens", "Token verification keys", "The current and next signing keys (RFC 7517).",
        {"200": _ok("JWKS", _ref("Jwks"))}, secured=False)},
    "/healthz": {"get": _operation("operations", "Liveness", "The process answers.",
                                   {"200": {"description": "Alive"}}, secured=False)},
    "/readyz": {"get": _operation("operations", "Readiness", "The database and both gRPC services answer.",
                                  {"200": {"description": "Ready"}, "503": _error("not_ready")}, secured=False)},
    "/openapi.json": {"get": _operation("operations", "This document", "",
                                        {"200": {"description": "OpenAPI 3.1"}}, secured=False)},
    "/docs": {"get": _operation("operations", "This document as HTML", "",
                                {"200": {"description": "HTML", "content": {"text/html": {}}}}, secured=False)},
}

SPEC: Schema = {
    "openapi": "3.1.0",
    "info": {"title": "faceauth", "version": "1.0.0",
             "description": "Face enrolment, face login with signed JWTs, 1:1 verification and 1:N "
                            "identification. Every error is {\"error\": {\"code\", \"message\"}}."},
    "servers": [{"url": "/"}],
    "security": [{"bearerApiKey": []}, {"headerApiKey": []}],
    "paths": _PATHS,
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {
            "bearerApiKey": {"type": "http", "scheme": "bearer", "description": "The application's API key"},
            "headerApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
    },
}
