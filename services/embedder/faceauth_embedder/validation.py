"""Checks on the landmarks a caller sends before a face is aligned with them."""

from __future__ import annotations

import numpy as np

from faceauth.errors import InvalidInput
from faceauth.grpc import landmarks
from faceauth.v1 import common_pb2
from facemodels.faces import LANDMARK_NAMES

# A face may reach past the photo's edges, but its landmarks not further than half the photo.
_MARGIN = 0.5
# Eyes closer than this give a chip of blurred pixels (and no usable similarity transform at 0).
_MIN_EYE_DISTANCE = 4.0


def landmark_points(message: common_pb2.Landmarks, image: np.ndarray) -> np.ndarray:
    """The (5, 2) points of ``message`` for ``image``, or InvalidInput("invalid_landmarks")."""
    points = landmarks.to_array(message)
    if len(points) != len(LANDMARK_NAMES):
        raise InvalidInput("invalid_landmarks",
                           f"a face needs exactly {len(LANDMARK_NAMES)} landmarks ({', '.join(LANDMARK_NAMES)}), "
                           f"got {len(points)}")
    if not np.isfinite(points).all():
        raise InvalidInput("invalid_landmarks", "landmarks must be finite numbers")
    height, width = image.shape[:2]
    low = -_MARGIN * np.array([width, height])
    high = (1 + _MARGIN) * np.array([width, height])
    if ((points < low) | (points > high)).any():
        raise InvalidInput("invalid_landmarks",
                           f"landmarks lie too far outside the {width}x{height} image; are they in its pixels?")
    if np.linalg.norm(points[1] - points[0]) < _MIN_EYE_DISTANCE:
        raise InvalidInput("invalid_landmarks", f"the eyes are less than {_MIN_EYE_DISTANCE:g} px apart")
    return points
