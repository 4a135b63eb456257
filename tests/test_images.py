"""The shared decoder on real photos and on hostile bytes."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceauth.errors import InvalidInput
from faceauth.images import decode_image


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_every_lfw_a_image_decodes_to_250_square_rgb(lfw: Path) -> None:
    files = sorted((lfw / "images").glob("A*/*.jpg"))
    assert len(files) > 300
    for path in files:
        pixels = decode_image(path.read_bytes())
        assert pixels.shape == (250, 250, 3), path
        assert pixels.dtype == np.uint8


def test_grayscale_rgba_png_and_webp_become_rgb(lfw: Path) -> None:
    photo = Image.open(next((lfw / "images").glob("A*/*.jpg")))
    for image, fmt in [(photo.convert("L"), "JPEG"), (photo.convert("RGBA"), "PNG"), (photo, "WEBP")]:
        assert decode_image(_encode(image, fmt)).shape == (250, 250, 3)


def test_exif_orientation_is_applied(lfw: Path) -> None:
    photo = Image.open(next((lfw / "images").glob("A*/*.jpg"))).crop((0, 0, 250, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    for fmt in ("JPEG", "PNG", "WEBP"):
        assert decode_image(_encode(photo, fmt, exif=exif)).shape == (250, 100, 3), fmt


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions but carries almost no data: a decompression bomb probe."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "empty_image"),
        (b"this is not an image at all", "unsupported_image"),
        (b"GIF89a" + b"\0" * 100, "unsupported_image"),
        (_png_header_only(20000, 20000), "image_too_large"),
        (_encode(Image.new("RGB", (1, 1)), "PNG"), "image_too_small"),
    ],
)
def test_hostile_bytes_give_a_clear_error(payload: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_image(payload)
    assert caught.value.code == code


def test_truncated_jpeg_is_refused(lfw: Path) -> None:
    data = next((lfw / "images").glob("A*/*.jpg")).read_bytes()
    with pytest.raises(InvalidInput) as caught:
        decode_image(data[: len(data) // 2])
    assert caught.value.code == "corrupt_image"


def test_random_bytes_after_a_jpeg_magic_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidInput):
        decode_image(b"\xff\xd8\xff\xe0" + rng.bytes(4096))
