"""JSON errors everywhere: ``{"error": {"code": ..., "message": ...}}`` with a stable, documented code."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
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


def register(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SQLAlchemyError, _database_error)
    app.register_error_handler(Exception, _unexpected)
