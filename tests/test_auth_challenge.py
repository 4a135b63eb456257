"""The active liveness challenge (faceauth_auth.challenges) with real LFW photos through the whole stack.

A live user turning their head is played by photos of one person: an LFW photo of Maria Shriver
turned to her left (yaw about +39 degrees by the landmark estimate) and its mirror image (about -38),
which is the same face turned to her right; her frontal photo is the login photo. Attacks are still
photos: the same frame repeated, a print turned about its vertical axis (the photo squeezed
horizontally), another person's frames, a challenge answered twice, late, or by someone else.
"""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from PIL import Image, ImageOps

from faceauth_auth import challenges
from faceauth_auth.__main__ import main as manage
from faceauth_auth.config import Settings
from faceauth_auth.db import Database
from faceauth_auth.models import AuditEvent, LivenessChallenge, utcnow
from faceauth_auth.repositories import applications
from tests.auth_helpers import ALICE, BOB, Application, Photo, body, error_code, transformed, upload

pytest_plugins = ["tests.auth_fixtures"]

PERSON = "Maria_Shriver"
ENROL, FRONT, TURNED = 4, 2, 1  # photo 1: turned to her left; its mirror: to her right
# People whose still photos try the challenge (tests/test_auth_challenge.py::test_still_photos_never_pass):
# the suite's usual users and LFW people photographed facing the camera and turned.
STILL = [(ALICE, 2), (ALICE, 3), (BOB, 1), (BOB, 2), ("Laura_Bush", 1), ("Maria_Shriver", 1), ("Maria_Shriver", 2),
         ("Thaksin_Shinawatra", 3), ("Thaksin_Shinawatra", 4), ("Franz_Fischler", 1), ("Jon_Gruden", 3),
         ("Queen_Elizabeth_II", 2)]


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


def mirrored(image: bytes) -> bytes:
    return transformed(image, ImageOps.mirror)


def squeezed(image: bytes, factor: float) -> bytes:
    """A flat print of ``image`` turned about its vertical axis: narrower by cos(angle) = ``factor``."""
    def squeeze(picture: Image.Image) -> Image.Image:
        canvas = Image.new("RGB", picture.size, (90, 90, 90))
        narrow = picture.resize((round(picture.width * factor), picture.height))
        canvas.paste(narrow, ((picture.width - narrow.width) // 2, 0))
        return canvas
    return transformed(image, squeeze)


def set_policy(monkeypatch: pytest.MonkeyPatch, database_url: str, app: str, policy: str) -> None:
    monkeypatch.setenv("FACEAUTH_DATABASE_URL", database_url)
    assert manage(["apps", "liveness", "--app", app, "--policy", policy]) == 0


def issue(http: FlaskClient, application: Application, user_id: str | None = "maria") -> dict[str, Any]:
    response = http.post("/v1/challenges", headers=application.headers,
                         json={} if user_id is None else {"user_id": user_id})
    assert response.status_code == 201, response.get_data(as_text=True)
    return body(response)


def answered(user_id: str | None, image: bytes, challenge_id: str, frames: list[bytes]) -> dict[str, Any]:
    """Test-client arguments of a face request answering a challenge (multipart)."""
    request = upload(user_id, image)
    request["data"]["challenge_id"] = challenge_id
    request["data"]["frames"] = [(io.BytesIO(frame), f"frame{index}.jpg") for index, frame in enumerate(frames)]
    return request


@pytest.fixture(scope="module")
def faces(photo: Photo) -> dict[str, bytes]:
    turned = photo(PERSON, TURNED)
    return {"enrol": photo(PERSON, ENROL), "front": photo(PERSON, FRONT), "left": turned, "right": mirrored(turned)}


def frames_for(steps: list[str], faces: dict[str, bytes]) -> list[bytes]:
    """What a live user sends: facing the camera, then two frames of each turn asked for."""
    return [faces["front"]] + [faces[step] for step in steps for _ in range(2)]


@pytest.fixture
def maria(http: FlaskClient, application: Application, faces: dict[str, bytes], auth_database_url: str,
          monkeypatch: pytest.MonkeyPatch) -> Application:
    """An application under the ``challenge`` policy with Maria enrolled."""
    enrolled = http.post("/auth/face-register", headers=application.headers, **upload("maria", faces["enrol"]))
    assert enrolled.status_code == 201
    set_policy(monkeypatch, auth_database_url, application.name, "challenge")
    return application


def login(http: FlaskClient, application: Application, faces: dict[str, bytes], frames: list[bytes] | None = None,
          challenge: dict[str, Any] | None = None, user_id: str = "maria") -> Any:
    challenge = challenge or issue(http, application, user_id)
    return http.post("/auth/face-login", headers=application.headers,
                     **answered(user_id, faces["front"], challenge["challenge_id"],
                                frames if frames is not None else frames_for(challenge["steps"], faces)))


def test_the_yaw_rule() -> None:
    left, right, ahead = 30.0, -30.0, 2.0
    assert challenges.follows(["left", "right"], [ahead, left, left, right, right])
    assert challenges.follows(["right", "left", "right"], [right, ahead, left, ahead, right])
    assert not challenges.follows(["left", "right"], [right, left])  # the wrong order
    assert not challenges.follows(["left", "right"], [left, left, left])  # one turn only (a turned still photo)
    assert not challenges.follows(["left", "right"], [ahead] * 5)  # a frontal still photo
    assert not challenges.follows(["left", "right"], [left, right, left])  # an extra turn (a replayed sweep)
    assert not challenges.follows(["left", "right"], [14.0, -14.0, 14.0])  # not turned far enough
    for _ in range(50):
        steps = challenges.random_steps()
        assert len(steps) in (2, 3) and all(a != b for a, b in itertools.pairwise(steps))


def test_a_challenge_passes_once_and_then_never_again(
        http: FlaskClient, maria: Application, faces: dict[str, bytes], auth_db: Database) -> None:
    challenge = issue(http, maria)
    assert set(challenge) == {"challenge_id", "user_id", "steps", "expires_in", "frames", "turn_degrees"}
    assert challenge["expires_in"] == 60 and set(challenge["steps"]) == {"left", "right"}
    with auth_db.transaction() as session:
        stored = session.get(LivenessChallenge, challenge["challenge_id"])
        assert stored is not None and stored.consumed_at is None
        assert timedelta(seconds=55) < stored.expires_at - stored.created_at <= timedelta(seconds=60)
    passed = login(http, maria, faces, challenge=challenge)
    assert passed.status_code == 200 and "access_token" in body(passed)
    replayed = login(http, maria, faces, challenge=challenge)  # the very same answer again
    assert (replayed.status_code, error_code(replayed)) == (401, "face_mismatch")
    # JSON works too, with base64 frames.
    fresh = issue(http, maria)
    encoded = [base64.b64encode(frame).decode() for frame in frames_for(fresh["steps"], faces)]
    passed = http.post("/auth/face-login", headers=maria.headers, json={
        "user_id": "maria", "image": base64.b64encode(faces["front"]).decode(), "challenge_id": fresh["challenge_id"],
        "frames": encoded})
    assert passed.status_code == 200, passed.get_data(as_text=True)


def test_a_challenge_is_bound_to_its_user_application_and_lifetime(
        http: FlaskClient, maria: Application, faces: dict[str, bytes], auth_db: Database,
        new_application: Callable[[], Application], auth_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mismatch = (401, "face_mismatch")
    for_someone_else = issue(http, maria, "someone-else")
    refused = login(http, maria, faces, challenge=for_someone_else)
    assert (refused.status_code, error_code(refused)) == mismatch

    other = new_application()
    assert http.post("/auth/face-register", headers=other.headers, **upload("maria", faces["enrol"])).status_code == 201
    set_policy(monkeypatch, auth_database_url, other.name, "challenge")
    refused = login(http, maria, faces, challenge=issue(http, other))  # the other application's challenge
    assert (refused.status_code, error_code(refused)) == mismatch
    assert login(http, other, faces).status_code == 200  # its own passes

    expired = issue(http, maria)
    with auth_db.transaction() as session:
        session.execute(sa.update(LivenessChallenge).where(LivenessChallenge.id == expired["challenge_id"])
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    refused = login(http, maria, faces, challenge=expired)
    assert (refused.status_code, error_code(refused)) == mismatch
    refused = login(http, maria, faces, challenge={"challenge_id": "made-up", "steps": ["left", "right"]})
    assert (refused.status_code, error_code(refused)) == mismatch


def test_the_frames_must_follow_the_steps_and_show_the_login_face(
        http: FlaskClient, maria: Application, faces: dict[str, bytes], photo: Photo,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(challenges, "random_steps", lambda: ("left", "right"))
    wrong_order = login(http, maria, faces, frames=frames_for(["right", "left"], faces))
    assert (wrong_order.status_code, error_code(wrong_order)) == (401, "face_mismatch")
    one_turn = login(http, maria, faces, frames=[*frames_for(["left"], faces), faces["front"]])
    assert one_turn.status_code == 401
    # Another person's head turns (Tony Blair mirrored to turn both ways) with Maria's login photo.
    stranger = photo(ALICE, 2)
    swapped = {"front": faces["front"], "left": stranger, "right": mirrored(stranger)}
    someone_else = login(http, maria, faces, frames=frames_for(["left", "right"], swapped))
    assert (someone_else.status_code, error_code(someone_else)) == (401, "face_mismatch")
    # A frame without a face fails the challenge too.
    blank = jpeg(Image.new("RGB", (250, 250), (120, 120, 120)))
    assert login(http, maria, faces, frames=[*frames_for(["left", "right"], faces), blank]).status_code == 401
    assert login(http, maria, faces).status_code == 200  # and the right answer still passes (no lockout yet)


def test_malformed_frames_are_a_client_error(http: FlaskClient, maria: Application, faces: dict[str, bytes]) -> None:
    challenge = issue(http, maria)
    for frames in ([faces["front"]], [faces["front"]] * 9):
        refused = login(http, maria, faces, frames=frames, challenge=challenge)
        assert (refused.status_code, error_code(refused)) == (400, "invalid_frames")
    assert login(http, maria, faces, challenge=challenge).status_code == 200  # a 400 does not consume it
    refused = http.post("/v1/challenges", headers=maria.headers, json={"user_id": "bad id"})
    assert (refused.status_code, error_code(refused)) == (400, "invalid_user_id")


def test_still_photos_never_pass(http: FlaskClient, application: Application, photo: Photo,
                                 auth_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """0 of 24 still-photo attacks pass: each photo of STILL as the same frame repeated, and as a print
    turned about its vertical axis by 0, 30, 45 and 60 degrees (its yaw does not change)."""
    set_policy(monkeypatch, auth_database_url, application.name, "report")  # the challenge is checked when sent
    passed = attempts = 0
    for person, index in STILL:
        image = photo(person, index)
        user = f"{person}-{index}".lower()
        assert http.post("/auth/face-register", headers=application.headers, **upload(user, image)).status_code == 201
        for frames in ([image] * 5, [squeezed(image, factor) for factor in (1.0, 0.87, 0.71, 0.5)]):
            response = login(http, application, {"front": image}, frames=frames, user_id=user)
            attempts += 1
            passed += response.status_code == 200
            assert (response.status_code, error_code(response)) == (401, "face_mismatch"), (person, index)
    assert (passed, attempts) == (0, 2 * len(STILL))


def test_policy_challenge_answers_a_login_without_one_exactly_like_a_mismatch_and_counts_it(
        http: FlaskClient, maria: Application, faces: dict[str, bytes], photo: Photo, auth_db: Database) -> None:
    bare = http.post("/auth/face-login", headers=maria.headers, **upload("maria", faces["front"]))
    mismatch = http.post("/auth/face-login", headers=maria.headers, **upload("maria", photo(BOB, 1)))
    assert bare.status_code == mismatch.status_code == 401
    assert bare.get_json() == mismatch.get_json() == {"error": {"code": "face_mismatch",
                                                                "message": "the face does not match"}}
    same = ("Content-Type", "Cache-Control", "WWW-Authenticate")
    assert {h: bare.headers.get(h) for h in same} == {h: mismatch.headers.get(h) for h in same}
    with auth_db.transaction() as session:
        found = applications.find(session, maria.name)
        assert found is not None
        details = session.scalars(sa.select(AuditEvent.detail).where(
            AuditEvent.application_id == found.id, AuditEvent.event == "login",
            AuditEvent.outcome == "spoof")).all()
    assert "liveness: no challenge answered" in details  # the reason is kept for the operator, not the client
    # Refusals count toward the lockout like mismatches: 5 failures (the default), then 429 even with a good answer.
    for _ in range(3):
        refused = http.post("/auth/face-login", headers=maria.headers, **upload("maria", faces["front"]))
        assert refused.status_code == 401
    locked = login(http, maria, faces)
    assert (locked.status_code, error_code(locked)) == (429, "too_many_attempts")


def test_policy_challenge_guards_verify_and_identify(
        http: FlaskClient, maria: Application, faces: dict[str, bytes]) -> None:
    bare = http.post("/auth/face-verify", headers=maria.headers, **upload("maria", faces["front"]))
    assert (bare.status_code, body(bare)) == (200, {"match": False, "confidence": 0.0})
    challenge = issue(http, maria)
    verified = http.post("/auth/face-verify", headers=maria.headers,
                         **answered("maria", faces["front"], challenge["challenge_id"],
                                    frames_for(challenge["steps"], faces)))
    assert body(verified)["match"] is True

    bare = http.post("/auth/face-identify", headers=maria.headers, **upload(None, faces["front"]))
    assert (bare.status_code, body(bare)) == (200, {"match": False, "user_id": None, "confidence": 0.0})
    maria_only = issue(http, maria)  # a challenge for a user id is not one for identify
    refused = http.post("/auth/face-identify", headers=maria.headers,
                        **answered(None, faces["front"], maria_only["challenge_id"],
                                   frames_for(maria_only["steps"], faces)))
    assert body(refused)["match"] is False
    anyone = issue(http, maria, None)
    found = http.post("/auth/face-identify", headers=maria.headers,
                      **answered(None, faces["front"], anyone["challenge_id"], frames_for(anyone["steps"], faces)))
    assert body(found)["user_id"] == "maria"
    # Enrolment needs no challenge (docs/security.md says why); a challenge sent is checked.
    assert http.post("/auth/face-register", headers=maria.headers, **upload("maria", faces["front"])).status_code == 201
    refused = http.post("/auth/face-register", headers=maria.headers,
                        **answered("maria", faces["front"], "made-up", frames_for(["left", "right"], faces)))
    assert (refused.status_code, error_code(refused)) == (422, "spoof_detected")


def test_the_old_enforce_name_still_works(auth_db: Database, application: Application, auth_database_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings and the CLI take ``enforce`` as ``enforce-passive``; test_auth_liveness.py shows a stored
    ``enforce`` refusing a printed photo."""
    monkeypatch.setenv("FACEAUTH_LIVENESS_POLICY", "enforce")
    assert Settings.from_env().liveness_policy == "enforce-passive"
    monkeypatch.setenv("FACEAUTH_LIVENESS_POLICY", "challenge")
    assert Settings.from_env().liveness_policy == "challenge"
    set_policy(monkeypatch, auth_database_url, application.name, "enforce")
    with auth_db.transaction() as session:
        found = applications.find(session, application.name)
        assert found is not None and found.liveness_policy == "enforce-passive"
