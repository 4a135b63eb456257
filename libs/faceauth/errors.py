"""Errors every layer maps the same way: InvalidInput to a client error (HTTP 4xx, gRPC INVALID_ARGUMENT),
ServerBusy to "try again later" (HTTP 503, gRPC RESOURCE_EXHAUSTED)."""

from __future__ import annotations


class InvalidInput(ValueError):  # noqa: N818 - reads better at call sites than InvalidInputError
    """The caller sent something we cannot use; ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ServerBusy(RuntimeError):  # noqa: N818 - reads better at call sites than ServerBusyError
    """No room for this input right now (e.g. the decode memory budget is spent): retry later or
    elsewhere; gRPC RESOURCE_EXHAUSTED, HTTP 503."""
