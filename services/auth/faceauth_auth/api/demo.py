"""The webcam demo page: enrol and log in from a browser through the public API (FACEAUTH_DEMO_ENABLED).

A development aid, off unless enabled: the page holds no secret (the visitor pastes an API key) and
calls /auth/face-register and /auth/face-login like any client. Its assets are plain files served
from ``demo_static``; no inline script or style, so the page runs under the strict policy set here.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

from faceauth_auth.authn import public

ASSETS = Path(__file__).resolve().parent.parent / "demo_static"
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                           "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

bp = Blueprint("demo", __name__, url_prefix="/demo")


@bp.after_request
def _lock_down(response: Response) -> Response:
    """Scripts, styles and requests from this origin only; the camera for this page alone."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Permissions-Policy"] = "camera=(self)"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/")
@public
def page() -> Response:
    return send_from_directory(ASSETS, "index.html")


@bp.get("/<any('demo.js', 'demo.css'):name>")
@public
def asset(name: str) -> Response:
    return send_from_directory(ASSETS, name)
