"""Enrolment, face login, verification, identification and erasure on real LFW faces.

Everything is real: Postgres, the detector and embedder processes over gRPC, the JWT checked by
PyJWT's JWKS client against the app served on a real port.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import jwt
from flask import Flask
from flask.testing import FlaskClient

from faceauth_auth.config import Settings
from tests.auth_helpers import (
    ALICE,
    BOB,
    CAROL,
    STRANGER,
    TWO_FACES,
    Application,
    Headers,
    Photo,
    body,
    error_code,
    http_upload,
    template_rows,
    upload,
)

pytest_plugins = ["tests.auth_fixtures"]

def enrol(http: FlaskClient, headers: Headers, user_id: str, image: bytes) -> str:
    response = http.post("/auth/face-register", headers=headers, **upload(user_id, image))
    assert response.status_code == 201, response.json
    return str(body(response)["face_id"])


def test_login_issues_a_token_that_verifies_through_the_published_jwks(
        http: FlaskClient, application: Application, photo: Photo, served: str, auth_settings: Settings) -> None:
    enrol(http, application.headers, "alice", photo(ALICE, 2))
    with urllib.request.urlopen(http_upload(f"{served}/auth/face-login", application.headers, "alice",
                                            photo(ALICE, 3))) as response:
        answer = json.load(response)
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == auth_settings.token_lifetime
    token = answer["access_token"]
    signing_key = jwt.PyJWKClient(f"{served}/.well-known/jwks.json").get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key, algorithms=["ES256"], issuer=auth_settings.jwt_issuer,
                        audience=application.name, options={"require": ["iss", "aud", "sub", "iat", "exp", "jti"]})
    assert claims["sub"] == "alice" and claims["amr"] == ["face"]
    assert claims["exp"] - claims["iat"] == auth_settings.token_lifetime
    assert uuid.UUID(claims["jti"]).version == 4
    assert jwt.get_unverified_header(token)["kid"] == signing_key.key_id


def test_another_person_and_an_unknown_user_get_the_same_401(http: FlaskClient, headers: Headers,
                                                             photo: Photo) -> None:
    enrol(http, headers, "alice", photo(ALICE, 2))
    impostor = http.post("/auth/face-login", headers=headers, **upload("alice", photo(BOB, 1)))
    unknown = http.post("/auth/face-login", headers=headers, **upload("nobody", photo(BOB, 1)))
    assert impostor.status_code == unknown.status_code == 401
    assert body(impostor) == body(unknown) == {"error": {"code": "face_mismatch", "message": "the face does not match"}}


def test_verify_and_identify(http: FlaskClient, headers: Headers, photo: Photo) -> None:
    for user, person, index in (("alice", ALICE, 2), ("bob", BOB, 1), ("carol", CAROL, 1)):
        enrol(http, headers, user, photo(person, index))
    same = body(http.post("/auth/face-verify", headers=headers, **upload("bob", photo(BOB, 2))))
    other = body(http.post("/auth/face-verify", headers=headers, **upload("bob", photo(CAROL, 3))))
    assert same["match"] is True and same["confidence"] >= 0.5
    assert other["match"] is False and other["confidence"] < 0.5
    found = body(http.post("/auth/face-identify", headers=headers, **upload(None, photo(CAROL, 3))))
    assert found["match"] is True and found["user_id"] == "carol" and found["confidence"] >= 0.5
    stranger = body(http.post("/auth/face-identify", headers=headers, **upload(None, photo(*STRANGER))))
    assert stranger["match"] is False and stranger["user_id"] is None
    unknown = http.post("/auth/face-verify", headers=headers, **upload("nobody", photo(BOB, 2)))
    assert unknown.status_code == 404 and error_code(unknown) == "user_not_found"


def test_several_faces_per_user_up_to_the_cap(http: FlaskClient, headers: Headers, photo: Photo,
                                              make_app: Callable[..., Flask]) -> None:
    capped = make_app(max_templates_per_user=2).test_client()
    for index in (2, 3):
        response = capped.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, index)))
        assert response.status_code == 201
    refused = capped.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 4)))
    assert refused.status_code == 409 and error_code(refused) == "too_many_faces"
    faces = body(http.get("/v1/users/alice/faces", headers=headers))["faces"]
    assert len(faces) == 2
    assert faces[0]["model"] == {"name": "mobilefacenet", "version": 1, "dimensions": 192}
    assert body(http.get("/v1/users/alice", headers=headers))["face_count"] == 2


def test_deleting_a_face_and_a_user_removes_the_rows(http: FlaskClient, headers: Headers, photo: Photo,
                                                     auth_database_url: str) -> None:
    first = enrol(http, headers, "alice", photo(ALICE, 2))
    second = enrol(http, headers, "alice", photo(ALICE, 3))
    assert template_rows(auth_database_url, [first, second]) == 2
    assert http.delete(f"/v1/users/alice/faces/{first}", headers=headers).status_code == 204
    assert template_rows(auth_database_url, [first, second]) == 1
    assert http.delete(f"/v1/users/alice/faces/{first}", headers=headers).status_code == 404
    assert http.delete("/v1/users/alice", headers=headers).status_code == 204
    assert template_rows(auth_database_url, [first, second]) == 0
    assert http.get("/v1/users/alice", headers=headers).status_code == 404
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 4))).status_code == 401


def test_a_photo_with_two_faces_is_refused_and_nothing_is_stored(http: FlaskClient, headers: Headers,
                                                                 photo: Photo) -> None:
    response = http.post("/auth/face-register", headers=headers, **upload("alice", photo(*TWO_FACES)))
    assert response.status_code == 422 and error_code(response) == "multiple_faces"
    assert http.get("/v1/users/alice", headers=headers).status_code == 404


def test_detect_reports_boxes_landmarks_and_quality(http: FlaskClient, headers: Headers, photo: Photo) -> None:
    answer = body(http.post("/v1/faces/detect", headers=headers, **upload(None, photo(*TWO_FACES))))
    assert answer["image"] == {"width": 250, "height": 250}
    assert len(answer["faces"]) == 2
    face = answer["faces"][0]
    assert set(face["landmarks"]) == {"left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right"}
    assert face["box"]["x_min"] < face["landmarks"]["nose_tip"]["x"] < face["box"]["x_max"]
    assert face["quality"] == {"usable": True, "reasons": [], "sharpness": face["quality"]["sharpness"]}


def test_concurrent_enrolments_of_a_new_user_respect_the_cap(headers: Headers, photo: Photo,
                                                             make_app: Callable[..., Flask]) -> None:
    app = make_app(max_templates_per_user=2)
    images = [photo(ALICE, index) for index in (2, 3, 4, 5)]

    def enrol_one(image: bytes) -> int:
        return app.test_client().post("/auth/face-register", headers=headers, **upload("dave", image)).status_code

    with ThreadPoolExecutor(len(images)) as pool:
        statuses = sorted(pool.map(enrol_one, images))
    assert statuses == [201, 201, 409, 409]
