"""MediaPipe FaceMesh as a landmark refiner: 468 points on a 192x192 crop around a detected face.

BlazeFace's key points come from a 256-px view of the whole photo and give the mouth centre, not
its corners. Re-reading each face at 192 px with FaceMesh gives precise eye contours and mouth
corners, which measurably improves alignment and so verification (docs/models.md).
"""

from __future__ import annotations

import numpy as np

INPUT_SIZE = 192
CROP_SCALE = 1.5  # crop side = 1.5 x the larger side of the BlazeFace box, as MediaPipe does
# Mesh indices (MediaPipe canonical face model).
EYE_CONTOUR_A = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
EYE_CONTOUR_B = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
NOSE_TIP = 1
MOUTH_CORNER_A, MOUTH_CORNER_B = 61, 291


def crop_matrix(box: tuple[float, float, float, float]) -> np.ndarray:
    """2x3 affine matrix taking image pixels to the square FaceMesh crop around ``box``."""
    x0, y0, x1, y1 = box
    half = max(x1 - x0, y1 - y0) * CROP_SCALE / 2
    scale = INPUT_SIZE / (2 * half)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[scale, 0, INPUT_SIZE / 2 - scale * cx], [0, scale, INPUT_SIZE / 2 - scale * cy]], np.float32)


def five_points(mesh: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners in image pixels, ordered left to right on screen."""
    scale = matrix[0, 0]
    points = (mesh[:, :2] - matrix[:, 2]) / scale
    eye_a, eye_b = points[list(EYE_CONTOUR_A)].mean(0), points[list(EYE_CONTOUR_B)].mean(0)
    mouth_a, mouth_b = points[MOUTH_CORNER_A], points[MOUTH_CORNER_B]
    if eye_a[0] > eye_b[0]:
        eye_a, eye_b = eye_b, eye_a
    if mouth_a[0] > mouth_b[0]:
        mouth_a, mouth_b = mouth_b, mouth_a
    return np.stack([eye_a, eye_b, points[NOSE_TIP], mouth_a, mouth_b]).astype(np.float32)
