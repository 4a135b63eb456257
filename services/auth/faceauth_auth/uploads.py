"""Reading a photo upload: multipart/form-data (fields ``user_id``, ``image``) or JSON with base64 ``image``.

Nothing here decodes pixels; the detector does that safely. The body's size is capped by Flask's
MAX_CONTENT_LENGTH (413) before any of this runs.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from flask import request

from faceauth_auth.errors import ApiError

USER_ID = re.compile(r"[A-Za-z0-9._@+:~-]{1,128}")
USER_ID_RULE = "1-128 characters: letters, digits and . _ @ + : ~ -"


@dataclass(frozen=True)
class Upload:
    user_id: str
    image: bytes


def valid_user_id(value: object) -> str:
    """``value`` when it is a well-formed user id; 400 otherwise."""
    if value is None or value == "":
        raise ApiError(400, "missing_user_id", "user_id is required")
    if not isinstance(value, str) or not USER_ID.fullmatch(value):
        raise ApiError(400, "invalid_user_id", f"user_id must be {USER_ID_RULE}")
    return value


def _from_json() -> tuple[bytes, object]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    encoded = body.get("image")
    if encoded is None:
        raise ApiError(400, "missing_image", "image is required (base64 in JSON)")
    if not isinstance(encoded, str):
        raise ApiError(400, "invalid_image_encoding", "image must be a base64 string")
    payload = encoded.partition(",")[2] if encoded.startswith("data:") else encoded  # data: URLs too
    try:
        image = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ApiError(400, "invalid_image_encoding", "image is not valid base64") from error
    return image, body.get("user_id")


def _from_form() -> tuple[bytes, object]:
    file = request.files.get("image")
    if file is None:
        raise ApiError(400, "missing_image", "image is required (a multipart file field)")
    return file.read(), request.form.get("user_id")


def _read() -> tuple[bytes, object]:
    if request.mimetype == "multipart/form-data":
        image, user_id = _from_form()
    elif request.mimetype == "application/json":
        image, user_id = _from_json()
    else:
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data or application/json")
    if not image:
        raise ApiError(400, "empty_image", "the image is empty")
    return image, user_id


def read_image() -> bytes:
    """The uploaded photo of a request that names no user."""
    return _read()[0]


def read_upload() -> Upload:
    """The uploaded photo and the validated user id."""
    image, user_id = _read()
    return Upload(valid_user_id(user_id), image)
