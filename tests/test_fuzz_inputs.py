"""Hypothesis on what strangers send: image bytes (libs/faceauth/images.py) and photo requests (uploads.py).

decode_image must answer every input with an upright 8-bit RGB array within its limits or with
InvalidInput and a documented code, never another exception. The HTTP API must answer every photo
request (any content type, body, JSON, base64, user id or size) with a documented JSON error or a
success, never a 5xx. Inputs start from real LFW photos: mutated, truncated, re-encoded in unusual
modes, animated, with forged EXIF or forged dimensions.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from PIL import Image

from faceauth.errors import InvalidInput
from faceauth.images import ImageLimits, decode_image
from tests.auth_helpers import ALICE, Application, upload
from tests.fuzz_helpers import FUZZ

pytest_plugins = ["tests.auth_fixtures", "tests.fuzz_fixtures"]

# Small enough that a forged 2 Mpx header decodes quickly on 2 shared cores; the checks are the same.
LIMITS = ImageLimits(max_bytes=1024 * 1024, max_pixels=2_000_000)
DECODE_CODES = {"empty_image", "image_too_large", "image_too_small", "unsupported_image", "corrupt_image"}
MAX_UPLOAD_BYTES = 64 * 1024
PHOTO_PATHS = ["/auth/face-register", "/auth/face-login", "/auth/face-verify", "/auth/face-identify",
               "/v1/faces/detect"]
CONTENT_TYPES = ["multipart/form-data", "application/json", "application/json; charset=utf-8", "text/plain",
                 "application/x-www-form-urlencoded", "image/jpeg", "application/octet-stream", "", "*/*",
                 "multipart/form-data; boundary=", "multipart/mixed; boundary=x"]
Photos = dict[str, bytes]


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


@pytest.fixture(scope="module")
def seeds(lfw: Path) -> Photos:
    """Real photos in every format and mode decode_image may meet, small enough to fuzz quickly."""
    original = (lfw / "images" / ALICE / f"{ALICE}_0002.jpg").read_bytes()
    face = Image.open(io.BytesIO(original)).convert("RGB").resize((96, 96))
    frames = [face, face.rotate(90), face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return {
        "lfw.jpg": original,
        "rgb.png": _encode(face, "PNG"),
        "rgb.webp": _encode(face, "WEBP"),
        "cmyk.jpg": _encode(face.convert("CMYK"), "JPEG"),
        "grey.jpg": _encode(face.convert("L"), "JPEG"),
        "progressive.jpg": _encode(face, "JPEG", progressive=True),
        "16bit.png": _encode(face.convert("I").point(lambda v: v * 256).convert("I;16"), "PNG"),
        "palette.png": _encode(face.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "bilevel.png": _encode(face.convert("1"), "PNG"),
        "rgba.png": _encode(face.convert("RGBA"), "PNG"),
        "la.png": _encode(face.convert("LA"), "PNG"),
        "animated.png": _encode(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "animated.webp": _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
    }


def _mutated(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    """``data`` with bytes overwritten at (position, value) and optionally truncated."""
    out = bytearray(data)
    for position, value in flips:
        out[position % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


def _png_sized(width: int, height: int, mode_byte: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but whose data is a few bytes: a bomb probe."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, mode_byte, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


def _jpeg_sized(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) claims another size."""
    start = jpeg.index(b"\xff\xc0") + 5
    return jpeg[:start] + struct.pack(">HH", height, width) + jpeg[start + 4:]


def _with_exif(image: bytes, orientation: int, extra: dict[int, int | str]) -> bytes:
    """A JPEG with any orientation value and other tags, as Pillow writes them (shapes it cannot write are skipped)."""
    exif = Image.Exif()
    exif.update(extra)
    exif[0x0112] = orientation
    try:
        return _encode(Image.open(io.BytesIO(image)).convert("RGB"), "JPEG", exif=exif)
    except (struct.error, ValueError, TypeError):
        reject()


def _raw_exif(image: bytes, payload: bytes) -> bytes:
    """A JPEG with an APP1 segment that says Exif and then carries ``payload`` (an EXIF bomb when hostile)."""
    segment = b"Exif\0\0" + payload[:65000]
    return image[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + image[2:]


def _hostile_images(seeds: Photos) -> st.SearchStrategy[tuple[str, bytes]]:
    small_jpeg = _encode(Image.open(io.BytesIO(seeds["lfw.jpg"])).resize((64, 64)), "JPEG")
    seed = st.sampled_from(sorted(seeds.items()))
    positions = st.tuples(st.integers(0, 1 << 20), st.integers(0, 255))
    sides = st.integers(1, 65535)
    tiff_header = st.sampled_from([b"II*\0\x08\0\0\0", b"MM\0*\0\0\0\x08"])
    return st.one_of(
        st.binary(max_size=2048).map(lambda data: ("random", data)),
        seed,
        st.tuples(seed, st.lists(positions, max_size=8), st.none() | st.integers(0, 1 << 16)).map(
            lambda args: ("mutated", _mutated(args[0][1], args[1], args[2]))),
        st.tuples(sides, sides, st.sampled_from([0, 2, 3, 4, 6, 7])).map(
            lambda size: ("png-dimensions", _png_sized(*size))),
        st.tuples(sides, sides).map(lambda size: ("jpeg-dimensions", _jpeg_sized(small_jpeg, *size))),
        st.tuples(st.integers(0, 65535), st.dictionaries(st.integers(1, 65535), st.integers(0, 65535)
                                                         | st.text(max_size=64), max_size=6)).map(
            lambda args: ("exif", _with_exif(small_jpeg, *args))),
        st.tuples(tiff_header, st.binary(max_size=4096)).map(
            lambda args: ("exif-raw", _raw_exif(small_jpeg, args[0] + args[1]))),
    )


def test_decode_image_answers_everything_with_pixels_or_invalid_input(seeds: Photos,
                                                                      fuzz_cases: Counter[str]) -> None:
    @settings(FUZZ, max_examples=1500)
    @given(case=_hostile_images(seeds))
    def check(case: tuple[str, bytes]) -> None:
        kind, data = case
        fuzz_cases[f"decode {kind}"] += 1
        try:
            pixels = decode_image(data, LIMITS)
        except InvalidInput as error:
            assert error.code in DECODE_CODES, error.code
            return
        height, width, channels = pixels.shape
        assert channels == 3 and pixels.dtype == np.uint8
        assert height * width <= LIMITS.max_pixels and min(height, width) >= LIMITS.min_side

    check()


@pytest.fixture(scope="module")
def strict_http(make_app: Callable[..., Flask], new_application: Callable[[], Application]) -> tuple[FlaskClient,
                                                                                                      Application]:
    """An app with a 64 KiB body limit (oversized bodies come cheap) and no rate limit or lockout in the way."""
    app = make_app(max_upload_bytes=MAX_UPLOAD_BYTES, rate_limit="1000000 per minute", lockout_max_failures=0)
    return app.test_client(), new_application()


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=10)
user_ids = st.one_of(st.sampled_from(["alice", "", " ", "a" * 129, "../etc", "alice\0", "ålice", "a/b"]),
                     st.text(max_size=140), st.none())


def _requests(seeds: Photos) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments of a test-client POST: well-formed or not, small or far too large."""
    small = st.sampled_from(sorted(seeds.values())) | st.binary(max_size=512)
    oversized = small.map(lambda data: (data or b"\0") * (MAX_UPLOAD_BYTES // len(data or b"\0") + 1))
    images = small | oversized
    base64_texts = st.one_of(
        images.map(lambda data: base64.b64encode(data).decode()),
        images.map(lambda data: "data:image/jpeg;base64," + base64.b64encode(data).decode()),
        st.text(max_size=200), st.sampled_from(["", "====", "data:", "data:,", "AAA", "not base64!"]))
    json_objects = st.fixed_dictionaries({}, optional={"user_id": user_ids | json_values,
                                                       "image": base64_texts | json_values})
    json_request = st.tuples(json_objects | json_values, st.sampled_from(CONTENT_TYPES)).map(
        lambda args: {"data": json.dumps(args[0]), "content_type": args[1] or None})
    raw_request = st.tuples(st.binary(max_size=2048) | oversized, st.sampled_from(CONTENT_TYPES)).map(
        lambda args: {"data": args[0], "content_type": args[1] or None})
    form_request = st.tuples(user_ids, images, st.booleans()).map(
        lambda args: upload(args[0], args[1]) if args[2] else {
            "data": {"user_id": args[0] or "", "photo": (io.BytesIO(args[1]), "p.jpg")},
            "content_type": "multipart/form-data"})
    return st.one_of(json_request, raw_request, form_request)


def test_photo_requests_get_a_json_error_or_a_success_never_a_5xx(
        strict_http: tuple[FlaskClient, Application], seeds: Photos, fuzz_cases: Counter[str]) -> None:
    http, application = strict_http

    @settings(FUZZ, max_examples=300)
    @given(path=st.sampled_from(PHOTO_PATHS), request=_requests(seeds))
    def check(path: str, request: dict[str, Any]) -> None:
        response = http.post(path, headers=application.headers, **request)
        fuzz_cases[f"request answered {response.status_code}"] += 1
        assert response.status_code < 500, response.get_data(as_text=True)[:300]
        if response.status_code >= 400:
            error = (response.get_json(silent=True) or {}).get("error")
            assert isinstance(error, dict) and isinstance(error.get("code"), str), response.get_data()[:300]
            assert isinstance(error.get("message"), str)

    check()
