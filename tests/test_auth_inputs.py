"""Bad input gets the documented 4xx with a stable code, never a 500, and changes nothing."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image, ImageFilter

from tests.auth_helpers import ALICE, Headers, Photo, body, error_code, transformed, upload

pytest_plugins = ["tests.auth_fixtures"]


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _landscape() -> bytes:
    """A photo-sized picture with no face in it."""
    y, x = np.mgrid[0:240, 0:320]
    return _png(np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8))


def _small_in_large(image: Image.Image) -> Image.Image:
    """The photo shrunk so the face is ~40 px wide, on a 640x480 grey canvas."""
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(image.resize((100, 100)), (270, 190))
    return canvas


@pytest.mark.parametrize(("make", "code"), [
    (lambda _: b"", "empty_image"),
    (lambda _: b"just some text, not a photo", "unsupported_image"),
    (lambda photo: photo(ALICE, 2)[:600], "corrupt_image"),
])
def test_undecodable_uploads_are_400(http: FlaskClient, headers: Headers, photo: Photo, make: Callable[[Photo], bytes],
                                     code: str) -> None:
    response = http.post("/auth/face-register", headers=headers, **upload("alice", make(photo)))
    assert response.status_code == 400 and error_code(response) == code
    assert http.get("/v1/users/alice", headers=headers).status_code == 404


@pytest.mark.parametrize(("make", "code"), [
    (lambda _: _landscape(), "no_face"),
    (lambda photo: transformed(photo(ALICE, 2), lambda i: i.filter(ImageFilter.GaussianBlur(2))), "face_too_blurry"),
    (lambda photo: transformed(photo(ALICE, 2), _small_in_large), "face_too_small"),
    (lambda _: _png(np.zeros((20, 20, 3), np.uint8)), "image_too_small"),
    (lambda _: _png(np.zeros((6000, 7000), np.uint8)), "image_too_large"),  # 42 Mpx in a small file
])
def test_unusable_photos_are_422(http: FlaskClient, headers: Headers, photo: Photo, make: Callable[[Photo], bytes],
                                 code: str) -> None:
    image = make(photo)
    for path in ("/auth/face-register", "/auth/face-login"):
        response = http.post(path, headers=headers, **upload("alice", image))
        assert response.status_code == 422 and error_code(response) == code, body(response)
    assert http.get("/v1/users/alice", headers=headers).status_code == 404


def test_user_id_is_required_and_checked(http: FlaskClient, headers: Headers, photo: Photo) -> None:
    missing = http.post("/auth/face-register", headers=headers, **upload(None, photo(ALICE, 2)))
    assert missing.status_code == 400 and error_code(missing) == "missing_user_id"
    invalid = http.post("/auth/face-register", headers=headers, **upload("a/b c", photo(ALICE, 2)))
    assert invalid.status_code == 400 and error_code(invalid) == "invalid_user_id"
    assert http.get("/v1/users/" + "x" * 129, headers=headers).status_code == 400


PHOTO_ENDPOINTS = ("/auth/face-register", "/auth/face-login", "/auth/face-verify", "/auth/face-identify",
                   "/v1/faces/detect")


@pytest.mark.parametrize("body_text", [
    "[" * 1000 + "]" * 1000,
    '{"user_id": "alice", "image": ' + "[" * 1000 + "]" * 1000 + "}",
    '{"user_id": "alice", "image": ' + '{"a": ' * 5000 + "0" + "}" * 5000 + "}",
    "[" * 1_000_000,  # 1 MB of brackets, never closed
], ids=["array-1000", "image-array-1000", "image-object-5000", "unclosed-1000000"])
def test_deeply_nested_json_is_400_invalid_json(http: FlaskClient, headers: Headers, body_text: str) -> None:
    for path in PHOTO_ENDPOINTS:
        response = http.post(path, headers=headers, data=body_text, content_type="application/json")
        assert response.status_code == 400 and error_code(response) == "invalid_json", (path, body(response))
    assert http.get("/v1/users/alice", headers=headers).status_code == 404


def test_json_uploads_with_base64(http: FlaskClient, headers: Headers, photo: Photo) -> None:
    encoded = base64.b64encode(photo(ALICE, 2)).decode()
    enrolled = http.post("/auth/face-register", headers=headers, json={"user_id": "alice", "image": encoded})
    assert enrolled.status_code == 201
    data_url = "data:image/jpeg;base64," + base64.b64encode(photo(ALICE, 3)).decode()
    login = http.post("/auth/face-login", headers=headers, json={"user_id": "alice", "image": data_url})
    assert login.status_code == 200
    for payload, code in (({"user_id": "alice", "image": "not base64!"}, "invalid_image_encoding"),
                          ({"user_id": "alice"}, "missing_image"), (["a list"], "invalid_json")):
        response = http.post("/auth/face-login", headers=headers, json=payload)
        assert response.status_code == 400 and error_code(response) == code
    broken = http.post("/auth/face-login", headers=headers, data="{not json", content_type="application/json")
    assert broken.status_code == 400 and error_code(broken) == "invalid_json"


def test_wrong_content_type_is_415(http: FlaskClient, headers: Headers, photo: Photo) -> None:
    for content_type in ("text/plain", "image/jpeg", "application/x-www-form-urlencoded"):
        response = http.post("/auth/face-login", headers=headers, data=photo(ALICE, 2), content_type=content_type)
        assert response.status_code == 415 and error_code(response) == "unsupported_media_type"


def test_oversized_uploads_are_413(http: FlaskClient, headers: Headers) -> None:
    body_too_large = http.post("/auth/face-register", headers=headers, **upload("alice", b"\xff" * (16 << 20)))
    assert body_too_large.status_code == 413 and error_code(body_too_large) == "payload_too_large"
    image_too_large = http.post("/auth/face-register", headers=headers, **upload("alice", b"\xff" * (11 << 20)))
    assert image_too_large.status_code == 413 and error_code(image_too_large) == "payload_too_large"


def test_unknown_routes_and_methods_answer_json(http: FlaskClient, headers: Headers) -> None:
    assert error_code(http.get("/nowhere", headers=headers)) == "not_found"
    wrong_method = http.get("/auth/face-login", headers=headers)
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "method_not_allowed"
    assert http.delete("/v1/users/alice/faces/not-a-uuid", headers=headers).status_code == 404
