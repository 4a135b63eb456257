"""Who is calling: every endpoint needs an application's API key unless its view is marked ``public``,
and the key needs the endpoint's scope (``ENDPOINT_SCOPES``).

The key comes as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. It is checked before the
rate limiter runs, so limits apply per application rather than per address; the key check itself is
limited per client address (``FailureLimit``, faceauth_auth.ratelimit): an address that failed it
too often is refused before its key is looked at. An endpoint that is neither public nor in
``ENDPOINT_SCOPES`` is refused to every key (403), so a new route cannot be reachable by accident;
tests/test_auth_security.py checks that each one has its scope.

Answers of endpoints that need a key (tokens, users, faces, the audit log) carry ``Cache-Control:
no-store``: they belong to one application and must not be kept by a browser or a shared cache
(RFC 6749 section 5.1 asks it of token responses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, cast

from flask import Flask, Response, current_app, g, request

from faceauth_auth import apikeys
from faceauth_auth.apikeys import Client
from faceauth_auth.context import EXTENSION, Services, services
from faceauth_auth.errors import ApiError

View = TypeVar("View", bound=Callable[..., object])
_PUBLIC = "faceauth_public"
_HASHER = "faceauth_api_key_hasher"

# The scope each non-public endpoint needs: ``enrol`` adds faces; ``login`` covers the face decisions
# (login, verify, identify), detection and the liveness challenges those may need; ``admin`` reads and
# erases users and faces and reads the audit log.
ENDPOINT_SCOPES = {
    "auth.face_register": "enrol",
    "auth.face_login": "login",
    "auth.face_verify": "login",
    "auth.face_identify": "login",
    "faces.detect": "login",
    "challenges.create": "login",
    "users.get_user": "admin",
    "users.delete_user": "admin",
    "users.list_faces": "admin",
    "users.delete_face": "admin",
    "users.get_lock": "admin",
    "users.delete_lock": "admin",
    "audit.list_events": "admin",
}


def public(view: View) -> View:
    """Mark a view as reachable without an API key (health, metrics, JWKS, API docs)."""
    setattr(view, _PUBLIC, True)
    return view


def is_public() -> bool:
    """Whether this request's endpoint is public; unmatched URLs count as public and end in 404."""
    view = current_app.view_functions.get(request.endpoint or "")
    return view is None or getattr(view, _PUBLIC, False)


def _presented_key() -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("X-API-Key", "").strip() or None


class FailureLimit(Protocol):
    """Counts failed authentications of the calling address; ``check`` raises (429) once it used them up."""

    def check(self) -> None: ...

    def hit(self) -> None: ...


def _authenticator(failures: FailureLimit, hasher: apikeys.KeyHasher) -> Callable[[], None]:
    def authenticate() -> None:
        if is_public():
            return
        failures.check()
        presented = _presented_key()
        if presented is None:
            failures.hit()
            raise ApiError(401, "missing_api_key", "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'",
                           {"WWW-Authenticate": "Bearer"})
        with services().db.transaction() as session:
            client = apikeys.authenticate(session, presented, hasher)
        if client is None:
            failures.hit()
            raise ApiError(401, "invalid_api_key", "the API key is unknown, revoked or expired",
                           {"WWW-Authenticate": "Bearer"})
        g.client = client
        needed = ENDPOINT_SCOPES.get(request.endpoint or "")
        if needed is None or needed not in client.scopes:
            raise ApiError(403, "insufficient_scope", f"this API key lacks the scope {needed or 'for this endpoint'}",
                           {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed or ""}"'})
    return authenticate


def _no_store(response: Response) -> Response:
    if not is_public():
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"  # HTTP/1.0 caches
    return response


def current_client() -> Client:
    client: Client = g.client
    return client


def init_app(app: Flask, failures: FailureLimit) -> None:
    """Register before the rate limiter's hook; refuses to start without a usable API key pepper."""
    settings = cast(Services, app.extensions[EXTENSION]).settings
    hasher = app.extensions[_HASHER] = apikeys.hasher_from_settings(settings)
    app.before_request(_authenticator(failures, hasher))
    app.after_request(_no_store)
