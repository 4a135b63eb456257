"""Safe image decoding for untrusted uploads.

Every service decodes photos sent by strangers, so decoding checks the format and the pixel count
from the header *before* any pixel is decompressed (no decompression bombs), refuses truncated
files instead of guessing, applies the EXIF orientation and always returns 8-bit RGB.

Pillow reads the header; OpenCV decodes the pixels. Both use libjpeg-turbo and give identical
pixels on the shared datasets' photos, but OpenCV writes straight into a numpy array where Pillow's
array conversion copies the image again: 0.8 ms instead of 2.0 ms for a 640x480 JPEG, paid by
both model servers on every login.

Memory is bounded twice. The pixel cap (ImageLimits.max_pixels) bounds one photo: a file of a few
KB can describe a huge single-colour image, and its decoded pixels are what costs. And a
process-wide budget of decoded bytes (DecodeBudget) bounds all photos together: the model servers
run up to ~160 calls at once (faceauth.grpc.settings), each holding its decoded photo, so a flood
of maximum-size photos would otherwise need 160 times the memory of one. A decode waits for room
in the budget for a moment, then gives up with ServerBusy (gRPC RESOURCE_EXHAUSTED, HTTP 503).
"""

from __future__ import annotations

import gc
import io
import threading
import time
import warnings
import weakref
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from faceauth.errors import InvalidInput, ServerBusy

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})

# Peak memory of cv2.imdecode over the decoded image's own size: OpenCV decodes into a buffer of its
# own and hands Python a copy, so a photo briefly costs twice its pixels. Measured (VmHWM of a fresh
# process) on 4032x3024 photos: 2.11-2.14 for JPEG (baseline, progressive, CMYK, EXIF-rotated) and
# PNG (RGB, RGBA, palette, 16-bit), 2.44 for WebP; rounded up.
DECODE_PEAK_FACTOR = 2.5


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on what we are willing to decode.

    ``max_pixels`` is 12 Mpx, 4096 x 3072 = 12,582,912 pixels: what a "12 MP" phone camera
    writes, 4032 x 3024 (12.19 M) or 4000 x 3000, passes, and the 48-50 MP sensors of newer phones
    save binned 12 MP photos by default. Face login needs far less (a face of 60 px suffices and the
    detector looks at a 128 px copy of the whole photo), so the cap is chosen for memory: at most
    36 MiB of RGB per photo, about 90 MiB while OpenCV decodes it (DECODE_PEAK_FACTOR), where the
    40 Mpx allowed before cost 115 MiB and 240 MiB, and 32 of those in parallel took a detector
    to 7.3 GB (docs/security.md). Photos above the cap are refused (``image_too_large``), not
    decoded reduced: the detector's boxes and landmarks are in the photo's pixels and the embedder
    aligns the face from them on its own decode of the same bytes, so a reduced decode in one service
    would have to be matched exactly in the other, for a saving the cap already gives.
    """

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 4096 * 3072  # 12 Mpx: 36 MiB decoded
    min_side: int = 32


DEFAULT_LIMITS = ImageLimits()


class DecodeBudget:
    """A process-wide allowance of decoded bytes, shared by every decode in flight.

    A decode reserves its peak (pixels x 3 x DECODE_PEAK_FACTOR) before OpenCV runs, keeps the
    array's own size while the caller holds the array, and gives that back when the array is freed
    (weakref.finalize: CPython frees it as soon as the last reference goes). A reservation that does
    not fit waits up to ``wait`` seconds for room, then raises ServerBusy; one larger than the
    whole budget is cut to the budget, so it still runs, alone.
    """

    def __init__(self, capacity: int, wait: float) -> None:
        if capacity <= 0 or wait < 0:
            raise ValueError(f"invalid decode budget: {capacity} bytes, {wait} s")
        self.capacity = capacity
        self.wait = wait
        # Reentrant: a finalizer may run (and release) in a thread that holds the lock.
        self._room = threading.Condition(threading.RLock())
        self._in_use = 0
        self._last_collect = -float("inf")

    @property
    def in_use(self) -> int:
        """Bytes reserved or held right now."""
        with self._room:
            return self._in_use

    def reserve(self, nbytes: int) -> int:
        """Reserve ``nbytes`` (at most the capacity), waiting for room; the amount reserved."""
        nbytes = min(max(nbytes, 0), self.capacity)
        give_up = time.monotonic() + self.wait
        collected = False
        with self._room:
            while self._in_use + nbytes > self.capacity:
                remaining = give_up - time.monotonic()
                if remaining > 0:
                    self._room.wait(remaining)
                    continue
                if not collected and self._collect_garbage():
                    collected = True
                    continue
                raise ServerBusy(f"too many images are being decoded ({self._in_use >> 20} MiB of "
                                 f"{self.capacity >> 20} MiB in use, {nbytes >> 20} MiB more asked); "
                                 "try again later")
            self._in_use += nbytes
        return nbytes

    def release(self, nbytes: int) -> None:
        with self._room:
            self._in_use -= nbytes
            self._room.notify_all()

    def hold(self, pixels: np.ndarray, reserved: int) -> None:
        """Turn a reservation into what ``pixels`` keeps, given back when the array is freed."""
        held = min(pixels.nbytes, reserved)
        self.release(reserved - held)
        weakref.finalize(pixels, self.release, held).atexit = False

    def _collect_garbage(self) -> bool:
        """Free arrays only a reference cycle keeps (an exception's traceback, say), at most once a
        second across threads; whether it ran."""
        now = time.monotonic()
        if now - self._last_collect < 1.0:
            return False
        self._last_collect = now
        gc.collect()
        return True


# 512 MiB: the chart gives each model server 2 GiB, of which the loaded detector or embedder uses
# ~0.9 GB. That is 14 photos at the pixel cap held at once (5 decoding), or the ~144 calls a server
# takes at once (queue + batch) each holding a 1280x960 photo, so ordinary photos never wait.
DECODE_BUDGET = DecodeBudget(capacity=512 << 20, wait=1.0)


def decode_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS, *,
                 budget: DecodeBudget | None = DECODE_BUDGET) -> np.ndarray:
    """Decode JPEG/PNG/WebP bytes to an upright (H, W, 3) uint8 RGB array or raise InvalidInput.

    The decode is counted against ``budget`` (None: not counted) until the array is freed; when
    the budget has no room within its wait, ServerBusy.
    """
    if not data:
        raise InvalidInput("empty_image", "the image is empty")
    if len(data) > limits.max_bytes:
        raise InvalidInput("image_too_large", f"the image is larger than {limits.max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS))
            width, height = image.size
            if width * height > limits.max_pixels:
                raise InvalidInput("image_too_large",
                                   f"the image has {width}x{height} pixels, more than {limits.max_pixels}")
            if min(width, height) < limits.min_side:
                raise InvalidInput("image_too_small",
                                   f"the image is {width}x{height}; each side needs {limits.min_side} px")
    except InvalidInput:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidInput("unsupported_image", "the bytes are not a JPEG, PNG or WebP image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInput("image_too_large", "the image has too many pixels") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInput("corrupt_image", f"the image could not be decoded: {exc}") from exc
    reserved = 0 if budget is None else budget.reserve(int(width * height * 3 * DECODE_PEAK_FACTOR))
    try:
        pixels = _pixels(data, image.format)
        if pixels.shape[0] * pixels.shape[1] > limits.max_pixels:  # OpenCV read other sizes than Pillow
            raise InvalidInput("corrupt_image", f"the {image.format} image's pixels do not match its header")
    except BaseException:
        if budget is not None:
            budget.release(reserved)
        raise
    if budget is not None:
        budget.hold(pixels, reserved)
    return pixels


def _pixels(data: bytes, fmt: str | None) -> np.ndarray:
    # Imported here: the auth service reads ImageLimits but never decodes, and OpenCV costs it 17 MiB.
    import cv2

    # IMREAD_COLOR_RGB applies the EXIF orientation and drops alpha; None means truncated or corrupt.
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    except cv2.error:
        pixels = None
    if pixels is None:
        raise InvalidInput("corrupt_image", f"the {fmt} image is truncated or corrupt")
    return pixels
