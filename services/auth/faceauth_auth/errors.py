"""JSON errors everywhere: ``{"error": {"code": ..., "message": ...}}`` with a stable, documented code."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Codes for errors Flask and its extensions raise on their own.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    """An answer other than success; raised anywhere below a view, rendered by the handler below."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _api_error(error: ApiError) -> Response:
    return error_response(error.status, error.code, error.message, error.headers)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() in ("retry-after", "allow")}
    return error_response(status, _HTTP_CODES.get(status, "http_error"), error.description or error.name, headers)


def database_unavailable(error: SQLAlchemyError) -> bool:
    """Whether ``error`` means the database cannot serve right now (down, restarting, unreachable, too
    slow, every pooled connection busy) rather than a bug: the client should retry.

    The driver's class alone does not tell: psycopg2 reports a connection lost during COMMIT as a
    plain DatabaseError, which SQLAlchemy recognises as a disconnection.
    """
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or isinstance(error, (OperationalError, InterfaceError))
    return isinstance(error, (DisconnectionError, PoolTimeoutError))


def _database_error(error: SQLAlchemyError) -> Response:
    """503 database_unavailable when the database is out of reach (the transaction was rolled back), else 500."""
    if not database_unavailable(error):
        return _unexpected(error)
    log.error("database unavailable: %s", getattr(error, "orig", error).__class__.__name__)
    return error_response(503, "database_unavailable", "the database is unavailable; try again shortly",
                          {"Retry-After": "1"})


def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error", exc_info=error)
    return error_response(500, "internal_error", "internal error")


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON, except that a document nested too deeply for Python's parser is malformed JSON.

    json.loads recurses once per level and raises RecursionError at about a thousand (fewer the
    deeper the call stack already is); that is not a ValueError, so request.get_json let it
    through and a 2 KB body of brackets answered 500. As a ValueError it is what any other broken
    body is: get_json(silent=True) gives None (400 invalid_json from uploads), get_json() a 400.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError as error:
            raise ValueError("the JSON document is nested too deeply") from error


def register(app: Flask) -> None:
    app.json = JsonProvider(app)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SQLAlchemyError, _database_error)
    app.register_error_handler(Exception, _unexpected)
