"""The plain data a detector hands to an embedder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Landmark order used everywhere in faceauth (image left/right, as seen on screen):
# 0 left eye, 1 right eye, 2 nose tip, 3 mouth centre, 4 left ear tragion, 5 right ear tragion.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose_tip", "mouth_centre", "left_ear", "right_ear")


@dataclass(frozen=True)
class Face:
    """One detected face in image pixel coordinates."""

    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max
    score: float
    landmarks: np.ndarray  # (6, 2) float32 x, y in LANDMARK_NAMES order

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]
