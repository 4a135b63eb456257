"""Turning faceauth's exceptions into gRPC statuses, the same way in every service."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import grpc

from faceauth.errors import InvalidInput, ServerBusy
from faceauth.grpc.batcher import DeadlineExpired, Overloaded

# Trailing metadata key holding InvalidInput.code ("corrupt_image", ...): a stable reason for programs,
# next to the human-readable status message.
ERROR_CODE_KEY = "faceauth-error-code"

# gRPC reports ~9.2e18 s left when the caller set no deadline; anything beyond a day means "none".
_NO_DEADLINE = 24 * 3600.0

Loaded = TypeVar("Loaded")


class NotReady(RuntimeError):  # noqa: N818 - reads better at call sites than NotReadyError
    """The model is still loading; the call is safe to retry (UNAVAILABLE)."""


def ready(value: Loaded | None) -> Loaded:
    """``value`` once the model has loaded; NotReady before."""
    if value is None:
        raise NotReady("the model is still loading; try again shortly")
    return value


def time_left(context: grpc.ServicerContext) -> float | None:
    """Seconds until the caller's deadline, or None when it set none."""
    remaining = float(context.time_remaining())
    return None if remaining > _NO_DEADLINE else remaining


@contextmanager
def status_on_error(context: grpc.ServicerContext) -> Iterator[None]:
    """Abort the call with the status that tells the caller what to do about the error."""
    try:
        yield
    except InvalidInput as exc:
        context.set_trailing_metadata(((ERROR_CODE_KEY, exc.code),))
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
    except (Overloaded, ServerBusy) as exc:
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    except DeadlineExpired as exc:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
    except NotReady as exc:
        context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
