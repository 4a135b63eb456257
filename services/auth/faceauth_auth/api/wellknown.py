"""The public keys that verify faceauth's tokens (RFC 7517), for any JWT library's JWKS client."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from faceauth_auth.authn import public
from faceauth_auth.context import services

bp = Blueprint("wellknown", __name__)


@bp.get("/.well-known/jwks.json")
@public
def jwks() -> Response:
    response = jsonify(services().tokens.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
