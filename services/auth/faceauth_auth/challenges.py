"""The active liveness challenge: turn the head as asked, in a few frames, then decide on the face.

``POST /v1/challenges`` issues a challenge: a random id, a random sequence of head turns (``left``
then ``right``, or the reverse, two or three steps, alternating) and a short lifetime, stored with the
application and user id it is for. The client captures 3-8 frames while the user follows the steps
and sends them (multipart ``frames``, or a JSON array of base64 ``frames``) with ``challenge_id`` on
the face request itself (face-login, face-verify, face-identify; face-register too, where it is
checked when sent). The server then checks, in this order:

1. the challenge is this application's, for this user id (none at identify), unexpired and not used
   yet; it is consumed by this request whatever the outcome, by one atomic UPDATE;
2. every frame has exactly one usable face (the quality rules of a login photo);
3. every frame's face is the login photo's face: embedding distance under the primary model's
   default threshold (FMR 1e-3);
4. the frames' yaw (from the five landmarks, faceauth_detector.pose) follows the steps: see ``follows``.

A still photo, held up or replayed, has one yaw in every frame, so it cannot follow two opposite
turns; a flat print turned about its vertical axis keeps its yaw too (the estimate is a ratio of
distances along the eye line, which the turn shrinks alike). Any failure is a PresentationAttackError.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from flask import request

from faceauth_auth.apikeys import Client
from faceauth_auth.context import Services
from faceauth_auth.errors import ApiError
from faceauth_auth.faces import Probe
from faceauth_auth.liveness import Decision, PresentationAttackError
from faceauth_auth.repositories import challenges as stored

STEPS = ("left", "right")
MIN_FRAMES, MAX_FRAMES = 3, 8
# A frame counts as turned to the user's left (nose towards the image's right edge: positive yaw) or
# right beyond this many degrees; in between it is neither. LFW's photos, which are taken facing the
# camera more or less, have a median |yaw| of 12 degrees by this estimate and a 95th percentile of 35
# (600 photos of 150 people, tests/test_auth_challenge.py keeps the measurement's rule): 15 degrees is
# reached by any deliberate turn, and two opposite steps need a swing of at least 30 degrees, which
# no still image makes.
TURN_DEGREES = 15.0


def random_steps() -> tuple[str, ...]:
    """Two or three alternating turns, starting either way."""
    first = secrets.randbelow(2)
    return tuple(STEPS[(first + index) % 2] for index in range(2 + secrets.randbelow(2)))


def new_id() -> str:
    return secrets.token_urlsafe(24)


def pose(yaw: float, turn: float = TURN_DEGREES) -> str | None:
    """``left``, ``right`` or None (facing the camera, or not turned far enough) for a face's yaw."""
    if yaw >= turn:
        return "left"
    if yaw <= -turn:
        return "right"
    return None


def follows(steps: Sequence[str], yaws: Sequence[float], turn: float = TURN_DEGREES) -> bool:
    """Whether the frames' head turns, in order, are exactly ``steps``.

    Each frame is ``left``, ``right`` or neither (``pose``); frames that are neither are skipped, and
    repeats of the same turn in a row count once (several frames of one step). What remains must be
    the steps themselves: nothing missing, no extra turn, in order.
    """
    turns: list[str] = []
    for yaw in yaws:
        label = pose(yaw, turn)
        if label is not None and (not turns or turns[-1] != label):
            turns.append(label)
    return turns == list(steps)


@dataclass(frozen=True)
class Response:
    """A challenge's answer as sent with a face request."""

    challenge_id: str
    frames: tuple[bytes, ...]


def _json_frames(body: dict[str, object]) -> list[bytes]:
    frames = body.get("frames")
    if frames is None:
        return []
    if not isinstance(frames, list) or not all(isinstance(frame, str) for frame in frames):
        raise ApiError(400, "invalid_frames", "frames must be an array of base64 strings")
    try:
        return [base64.b64decode(frame.partition(",")[2] if frame.startswith("data:") else frame, validate=True)
                for frame in frames]
    except (binascii.Error, ValueError) as error:
        raise ApiError(400, "invalid_frames", "a frame is not valid base64") from error


def read_response() -> Response | None:
    """The request's ``challenge_id`` and ``frames``, or None when it sends neither field; a 400 when
    either is malformed or the frames are not 3-8 non-empty images (a client's mistake, not an attack)."""
    if request.mimetype == "multipart/form-data":
        if "challenge_id" not in request.form and "frames" not in request.files and "frames" not in request.form:
            return None
        challenge_id: object = request.form.get("challenge_id")
        frames = [file.read() for file in request.files.getlist("frames")]
        frames += [value.encode() for value in request.form.getlist("frames")]  # sent as text parts
    elif request.mimetype == "application/json":
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or ("challenge_id" not in body and "frames" not in body):
            return None  # uploads already refused a body that is not an object
        challenge_id, frames = body.get("challenge_id"), _json_frames(body)
    else:
        return None
    if not isinstance(challenge_id, str) or not 1 <= len(challenge_id) <= 64:
        raise ApiError(400, "invalid_challenge_id", "challenge_id must be the id POST /v1/challenges returned")
    if not MIN_FRAMES <= len(frames) <= MAX_FRAMES or not all(frames):
        raise ApiError(400, "invalid_frames", f"send {MIN_FRAMES}-{MAX_FRAMES} non-empty frames with challenge_id")
    return Response(challenge_id, tuple(frames))


def check(svc: Services, client: Client, user_id: str | None, probe: Probe, decision: Decision,
          response: Response | None) -> None:
    """Raise PresentationAttackError unless ``response`` answers a live challenge of this application and
    user id with frames of ``probe``'s face following its steps; consumes the challenge either way."""
    if response is None:
        raise PresentationAttackError(decision, "no challenge answered")
    with svc.db.transaction() as session:
        steps = stored.consume(session, response.challenge_id, client.application_id, user_id)
    if steps is None:
        raise PresentationAttackError(decision, "challenge unknown, expired, used or for another user")
    threshold = probe.info.default_threshold
    yaws = []
    for index, frame in enumerate(response.frames):
        try:
            framed = svc.pipeline.probe(frame)  # exactly one usable face, or a 422
        except ApiError as error:
            if error.status >= 500:
                raise
            raise PresentationAttackError(decision, f"frame {index}: {error.code}") from error
        if framed.info != probe.info:  # an embedder upgrade between the two calls
            raise ApiError(503, "service_unavailable", "the embedder's models changed; try again shortly",
                           {"Retry-After": "1"})
        distance = float(np.linalg.norm(framed.embedding - probe.embedding))
        if distance > threshold:
            raise PresentationAttackError(decision, f"frame {index} is another face (distance {distance:.3f})")
        yaws.append(framed.yaw_degrees)
    if not follows(steps, yaws):
        turns = [round(yaw) for yaw in yaws]
        raise PresentationAttackError(decision, f"head turns {turns} do not follow {list(steps)}")
