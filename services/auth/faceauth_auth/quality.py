"""Is a face good enough to enrol or log in with? Size and sharpness, as the detector measured them.

Sharpness comes from the detector (faceauth_detector.sharpness: variance of the Laplacian of the
face crop at 128 px); the default bound of 15 keeps ~99 % of LFW and refuses visibly blurred
faces. Size is the shorter side of the detector's box; LFW faces are 67-143 px.
"""

from __future__ import annotations

from dataclasses import dataclass

from faceauth_auth.errors import ApiError
from faceauth_auth.faces import DetectedFace, Quality


@dataclass(frozen=True)
class QualityPolicy:
    """The bounds a face must meet; a bad template would weaken every later login of its user."""

    min_face_size: float
    min_sharpness: float

    def assess(self, box: tuple[float, float, float, float], sharp: float | None) -> Quality:
        """The verdict on a face with this box and sharpness (None: a detector older than the sharpness
        field, met during a rolling upgrade, did not measure it; the face is not refused for blur)."""
        size = min(box[2] - box[0], box[3] - box[1])
        blurry = sharp is not None and sharp < self.min_sharpness
        reasons = (("face_too_small", size < self.min_face_size), ("face_too_blurry", blurry))
        return Quality(sharp, tuple(reason for reason, failed in reasons if failed))


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
