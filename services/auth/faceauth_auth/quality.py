"""Is a face good enough to enrol or log in with? Size and sharpness, measured on the face itself.

Sharpness is the variance of the Laplacian of the face crop (a square around the box) resized to
128 px grey, so it does not depend on the photo's resolution. On 300 random LFW photos the 1st
percentile of real faces is 18 and a Gaussian blur of sigma 1.5 px (on 250 px photos) brings the
median down to 13, sigma 2 to 8.5; the default bound of 15 keeps ~99 % of LFW and refuses visibly
blurred faces. Size is the shorter side of the detector's box; LFW faces are 67-143 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceauth_auth.errors import ApiError
from faceauth_auth.faces import DetectedFace, Quality

CROP_SIZE = 128


@dataclass(frozen=True)
class QualityPolicy:
    """The bounds a face must meet; a bad template would weaken every later login of its user."""

    min_face_size: float
    min_sharpness: float

    def assess(self, image: np.ndarray, box: tuple[float, float, float, float]) -> Quality:
        """The verdict on the face in ``box`` of ``image`` (RGB uint8)."""
        size = min(box[2] - box[0], box[3] - box[1])
        sharp = sharpness(image, box)
        reasons = (("face_too_small", size < self.min_face_size), ("face_too_blurry", sharp < self.min_sharpness))
        return Quality(sharp, tuple(reason for reason, failed in reasons if failed))


def sharpness(image: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Variance of the Laplacian of the square crop around ``box`` (RGB uint8 image), at CROP_SIZE px."""
    x_min, y_min, x_max, y_max = box
    half = max(x_max - x_min, y_max - y_min) / 2
    cx, cy = (x_min + x_max) / 2, (y_min + y_max) / 2
    height, width = image.shape[:2]
    left, top = max(int(cx - half), 0), max(int(cy - half), 0)
    right, bottom = min(int(cx + half), width), min(int(cy + half), height)
    if right - left < 2 or bottom - top < 2:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(image[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def single_usable(faces: list[DetectedFace]) -> DetectedFace:
    """The one face to use; else a 422 that says what is wrong with the photo.

    Only faces large enough count, so a stranger far behind the user does not block a login.
    """
    if not faces:
        raise ApiError(422, "no_face", "no face was found in the image")
    large = [face for face in faces if "face_too_small" not in face.quality.reasons]
    if not large:
        raise ApiError(422, "face_too_small", "the face is too small; come closer to the camera")
    if len(large) > 1:
        raise ApiError(422, "multiple_faces", f"{len(large)} faces were found; exactly one is needed")
    if not large[0].quality.usable:
        raise ApiError(422, "face_too_blurry", "the face is too blurry; hold the camera still")
    return large[0]
