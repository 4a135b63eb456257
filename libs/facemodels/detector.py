"""Face detection: letter-box the photo, run BlazeFace, decode and map back to image pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facemodels import blazeface
from facemodels.faces import Face
from facemodels.saved import SavedModel


@dataclass(frozen=True)
class DetectorSettings:
    """Decision knobs, kept apart from the network so they can be tuned per deployment."""

    score_threshold: float = 0.5
    iou_threshold: float = 0.3
    max_faces: int = 32


@dataclass(frozen=True)
class _Letterbox:
    """How a photo was placed on the square network input: scale from input px to image px."""

    scale: float


class FaceDetector:
    """Thread-safe: the SavedModel is loaded once and shared by all callers."""

    def __init__(self, model: SavedModel, settings: DetectorSettings = DetectorSettings()) -> None:
        self.model = model
        self.settings = settings
        self._anchors = blazeface.anchor_centres()

    @classmethod
    def load(cls, model_dir: Path, settings: DetectorSettings = DetectorSettings()) -> FaceDetector:
        return cls(SavedModel.load(model_dir, "blazeface"), settings)

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in one (H, W, 3) uint8 RGB image, best first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Detect in several images with one network call (what dynamic batching feeds us)."""
        if not images:
            return []
        inputs, boxes = zip(*(self._letterbox(image) for image in images), strict=True)
        outputs = self.model.run(images=np.stack(inputs))
        return [self._decode(scores, regressors, box)
                for scores, regressors, box in zip(outputs["scores"], outputs["regressors"], boxes, strict=True)]

    @staticmethod
    def _letterbox(image: np.ndarray) -> tuple[np.ndarray, _Letterbox]:
        height, width = image.shape[:2]
        side = max(height, width)
        size = blazeface.INPUT_SIZE
        scale = size / side
        resized = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                             interpolation=cv2.INTER_AREA)
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        return canvas, _Letterbox(scale=side)

    def _decode(self, scores: np.ndarray, regressors: np.ndarray, letterbox: _Letterbox) -> list[Face]:
        boxes, probabilities, keypoints = blazeface.decode(regressors, scores, self._anchors)
        kept = blazeface.weighted_nms(boxes, probabilities, keypoints,
                                      self.settings.score_threshold, self.settings.iou_threshold)
        faces = []
        for box, score, points in kept[: self.settings.max_faces]:
            x0, y0, x1, y1 = (float(v) * letterbox.scale for v in box)
            faces.append(Face(box=(x0, y0, x1, y1), score=score,
                              landmarks=(points * letterbox.scale).astype(np.float32)))
        return faces
