"""The plain data a detector hands to an embedder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The five landmarks faceauth passes around, left/right as seen on screen (not the subject's own).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    """One detected face in image pixel coordinates."""

    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max
    score: float  # BlazeFace detection confidence
    landmarks: np.ndarray  # (5, 2) float32 x, y in LANDMARK_NAMES order
    landmark_score: float  # FaceMesh's probability that the crop holds a face
    liveness_score: float | None = None  # facemodels.liveness: higher = more likely a live face; None unscored

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box against an (N, 4) array of boxes."""
    top_left = np.maximum(box[:2], others[:, :2])
    bottom_right = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    union = np.prod(box[2:] - box[:2]) + np.prod(others[:, 2:] - others[:, :2], axis=1) - inter
    return inter / np.maximum(union, 1e-9)
