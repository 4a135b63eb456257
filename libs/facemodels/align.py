"""Face alignment: a similarity transform from detected landmarks to the embedder's template."""

from __future__ import annotations

import cv2
import numpy as np


def dlib_chip_template(size: int = 150, padding: float = 0.25) -> np.ndarray:
    """Where dlib's ``get_face_chip`` puts our five landmarks: eye centres, nose tip, mouth corners.

    dlib's face recognition net was trained on chips cut by ``get_face_chip_details`` (150 px, padding
    0.25), which maps the 68-point mean face shape (``mean_face_shape_x/y`` in dlib's source, points
    17-67, unit square) onto the chip. An eye centre is the mean of that eye's six landmarks, the nose
    tip is landmark 30, the mouth corners are landmarks 48 and 54. Verified by LFW accuracy
    (docs/models.md), not by eye.
    """
    unit = np.array([
        [0.225492, 0.215990],  # mean of landmarks 36-41 (eye on the image's left)
        [0.754761, 0.215990],  # mean of landmarks 42-47
        [0.490127, 0.515625],  # landmark 30, nose tip
        [0.254149, 0.780233],  # landmark 48, mouth corner on the image's left
        [0.726104, 0.780233],  # landmark 54
    ])
    return ((unit + padding) / (1 + 2 * padding) * size).astype(np.float32)


def arcface_template() -> np.ndarray:
    """InsightFace's reference points for a 112 px chip, which ArcFace-family networks (MobileFaceNet)
    were trained on: eye centres, nose tip and mouth corners, in our LANDMARK_NAMES order."""
    return np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, 1991) mapping ``source`` points onto ``target``; a 2x3 matrix."""
    if source.shape != target.shape:
        raise ValueError(f"got {len(source)} landmarks, the template has {len(target)}")
    src = source.astype(np.float64)
    dst = target.astype(np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var < 1e-9:
        raise ValueError("landmarks are degenerate; cannot align the face")
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    reflection = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        reflection[1, 1] = -1.0
    rotation = u @ reflection @ vt
    scale = (singular * np.diag(reflection)).sum() / src_var
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]]).astype(np.float32)


def align_face(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` (H, W, 3 uint8 RGB) so that ``landmarks`` land on ``template``; returns size x size."""
    matrix = similarity_transform(landmarks, template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
