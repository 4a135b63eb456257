"""The shared decoder on real photos and on hostile bytes."""

from __future__ import annotations

import gc
import io
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceauth.errors import InvalidInput, ServerBusy
from faceauth.images import DECODE_PEAK_FACTOR, DEFAULT_LIMITS, DecodeBudget, decode_image


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


@pytest.mark.parametrize(("width", "height"), [(4032, 3024), (3024, 4032), (4000, 3000), (4096, 3072)])
def test_twelve_megapixel_phone_photos_decode(width: int, height: int) -> None:
    pixels = decode_image(_encode(Image.new("RGB", (width, height), (90, 140, 200)), "PNG"))
    assert pixels.shape == (height, width, 3)


@pytest.mark.parametrize(("width", "height"), [(4097, 3072), (4096, 3073), (5000, 4000), (7000, 5700)])
def test_more_than_twelve_megapixels_are_refused_from_the_header(width: int, height: int) -> None:
    assert DEFAULT_LIMITS.max_pixels == 4096 * 3072
    with pytest.raises(InvalidInput) as caught:
        decode_image(_png_header_only(width, height))
    assert caught.value.code == "image_too_large"


def _lfw_photo(lfw: Path) -> bytes:
    return (lfw / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg").read_bytes()


def test_the_budget_counts_a_photo_until_its_pixels_are_freed(lfw: Path) -> None:
    budget = DecodeBudget(capacity=64 << 20, wait=0.0)
    pixels = decode_image(_lfw_photo(lfw), budget=budget)
    assert budget.in_use == pixels.nbytes == 250 * 250 * 3
    view = pixels[10:20]
    del pixels
    assert budget.in_use == 250 * 250 * 3  # a view keeps the pixels alive, and counted
    del view
    assert budget.in_use == 0


def test_failed_decodes_give_their_reservation_back(lfw: Path) -> None:
    budget = DecodeBudget(capacity=64 << 20, wait=0.0)
    data = _lfw_photo(lfw)
    for payload in (data[: len(data) // 2], b"\xff\xd8\xff\xe0" + bytes(4096), _png_header_only(20000, 20000)):
        with pytest.raises(InvalidInput):
            decode_image(payload, budget=budget)
    assert budget.in_use == 0


def test_a_spent_budget_waits_for_room_then_gives_server_busy(lfw: Path) -> None:
    data = _lfw_photo(lfw)
    peak = int(250 * 250 * 3 * DECODE_PEAK_FACTOR)
    budget = DecodeBudget(capacity=peak + 250 * 250 * 3 - 1, wait=0.3)  # one photo held, not a second decode
    held = decode_image(data, budget=budget)
    started = time.monotonic()
    with pytest.raises(ServerBusy, match="too many images are being decoded"):
        decode_image(data, budget=budget)
    assert 0.3 <= time.monotonic() - started < 3
    assert budget.in_use == held.nbytes
    # Room made while a decode waits lets it through.
    holder = [held]
    del held
    threading.Timer(0.1, holder.clear).start()
    assert decode_image(data, budget=budget).shape == (250, 250, 3)
    assert budget.in_use == 0


def test_pixels_only_a_reference_cycle_keeps_are_collected_before_giving_up(lfw: Path) -> None:
    data = _lfw_photo(lfw)
    budget = DecodeBudget(capacity=int(250 * 250 * 3 * DECODE_PEAK_FACTOR), wait=0.05)
    gc.disable()  # only the budget may collect the cycle
    try:
        cycle: list[object] = [decode_image(data, budget=budget)]
        cycle.append(cycle)
        del cycle
        assert budget.in_use == 250 * 250 * 3
        assert decode_image(data, budget=budget).shape == (250, 250, 3)
    finally:
        gc.enable()
