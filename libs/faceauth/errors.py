"""One error type that every layer can map to a client error (HTTP 4xx, gRPC INVALID_ARGUMENT)."""

from __future__ import annotations


class InvalidInput(ValueError):  # noqa: N818 - reads better at call sites than InvalidInputError
    """The caller sent something we cannot use; ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
