"""A rough head-yaw estimate from the five landmarks, so clients can ask users to face the camera."""

from __future__ import annotations

import numpy as np

# Nose tip's depth in front of the eyes-and-mouth plane as a fraction of the eye distance, for an
# average adult face (~32 mm against ~63 mm between the eye centres).
_NOSE_DEPTH = 0.5


def yaw_degrees(landmarks: np.ndarray) -> float:
    """Yaw in degrees: 0 facing the camera, positive when the nose points to the image's right edge.

    Measured along the eye line, so head roll does not count: turning by ``yaw`` moves the nose tip
    ``depth * sin(yaw)`` off the centre of the eyes and mouth corners while the eyes appear
    ``cos(yaw)`` times as far apart, hence ``tan(yaw) = offset / (_NOSE_DEPTH * eye distance)``.
    """
    left_eye, right_eye, nose, mouth_left, mouth_right = np.asarray(landmarks, dtype=np.float64)
    eye_line = right_eye - left_eye
    eye_distance = float(np.linalg.norm(eye_line))
    if eye_distance < 1e-6:
        return 0.0
    centre = (left_eye + right_eye + mouth_left + mouth_right) / 4
    offset = float(np.dot(nose - centre, eye_line / eye_distance))
    return float(np.degrees(np.arctan2(offset, _NOSE_DEPTH * eye_distance)))
