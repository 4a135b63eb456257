"""Face detection: letter-box the photo, run BlazeFace, decode and map back to image pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from facemodels import blazeface, faceantispoofing, facemesh
from facemodels.faces import Face
from facemodels.liveness import FACEMESH_CROP, LivenessScorer
from facemodels.saved import DEFAULT_RUNTIME, Runtime, SavedModel


@dataclass(frozen=True)
class DetectorSettings:
    """Decision knobs, kept apart from the network so they can be tuned per deployment."""

    score_threshold: float = 0.5
    iou_threshold: float = 0.3
    max_faces: int = 32
    # FaceMesh must also see a face in the crop; drops BlazeFace's false alarms on texture.
    landmark_threshold: float = 0.5


@dataclass(frozen=True)
class _Letterbox:
    """How a photo was placed on the square network input: scale from input px to image px."""

    scale: float


class FaceDetector:
    """BlazeFace finds faces, FaceMesh refines each one's landmarks, an optional liveness model scores
    each kept face on the same crop. Thread-safe; models load once."""

    def __init__(self, model: SavedModel, mesh: SavedModel, settings: DetectorSettings = DetectorSettings(),
                 liveness: LivenessScorer | None = None) -> None:
        self.model = model
        self.mesh = mesh
        self.settings = settings
        self.liveness = liveness
        self._anchors = blazeface.anchor_centres()

    @classmethod
    def load(cls, model_dir: Path, settings: DetectorSettings = DetectorSettings(),
             liveness_model: str | None = None, runtime: Runtime = DEFAULT_RUNTIME) -> FaceDetector:
        """``liveness_model``: a liveness model's name in models.lock.json, or None to leave faces unscored."""
        liveness = LivenessScorer.load(model_dir, liveness_model, runtime) if liveness_model else None
        return cls(SavedModel.load(model_dir, "blazeface", runtime), SavedModel.load(model_dir, "facemesh", runtime),
                   settings, liveness)

    def warm_up(self, max_batch_size: int) -> None:
        """Run every network at every batch size up to ``max_batch_size``, so no caller pays for set-up.

        Blank photos hold no face, so FaceMesh gets blank crops of its own.
        """
        for size in range(1, max_batch_size + 1):
            self.detect_batch([np.zeros((480, 640, 3), np.uint8)] * size)
            blank_crops = np.zeros((size, facemesh.INPUT_SIZE, facemesh.INPUT_SIZE, 3), np.uint8)
            self.mesh.run(crops=blank_crops)
            if self.liveness is not None:
                side = self.liveness.crop_size
                self.liveness.score_crops(np.zeros((size, side, side, 3), np.uint8))

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in one (H, W, 3) uint8 RGB image, best first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Detect in several images with one network call (what dynamic batching feeds us)."""
        if not images:
            return []
        inputs, boxes = zip(*(self._letterbox(image) for image in images), strict=True)
        outputs = self.model.run(images=np.stack(inputs))
        candidates = [self._decode(scores, regressors, box)
                      for scores, regressors, box in zip(outputs["scores"], outputs["regressors"], boxes, strict=True)]
        return self._refine(images, candidates)

    def _refine(self, images: Sequence[np.ndarray], candidates: list[list[Face]]) -> list[list[Face]]:
        """One FaceMesh call for every candidate face of every image; keep those FaceMesh confirms.

        The liveness model, if any, then scores the kept faces in one more call: on these same crops,
        or on crops of its own (liveness.FACEANTISPOOFING_CROP).
        """
        crops, matrices = [], []
        for image, faces in zip(images, candidates, strict=True):
            for face in faces:
                matrix = facemesh.crop_matrix(face.box)
                crops.append(cv2.warpAffine(image, matrix, (facemesh.INPUT_SIZE, facemesh.INPUT_SIZE),
                                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))
                matrices.append(matrix)
        if not crops:
            return candidates
        outputs = self.mesh.run(crops=np.stack(crops))
        refined: list[list[Face]] = []
        kept_crops = []
        index = 0
        for image, faces in zip(images, candidates, strict=True):
            kept = []
            for face in faces:
                probability = float(outputs["face_probability"][index])
                if probability >= self.settings.landmark_threshold:
                    points = facemesh.five_points(outputs["mesh"][index], matrices[index])
                    kept.append(Face(box=face.box, score=face.score, landmarks=points, landmark_score=probability))
                    kept_crops.append(crops[index] if self._reuses_mesh_crop else self._liveness_crop(image, face))
                index += 1
            refined.append(kept)
        return self._score_liveness(refined, kept_crops)

    @property
    def _reuses_mesh_crop(self) -> bool:
        return self.liveness is None or self.liveness.crop == FACEMESH_CROP

    def _liveness_crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """FaceAntiSpoofing's crop of one face: the square box, moved inside the photo, at 256 px."""
        if self.liveness is None:
            return np.zeros((0, 0, 3), np.uint8)
        height, width = image.shape[:2]
        size = self.liveness.crop_size
        return cv2.warpAffine(image, faceantispoofing.crop_matrix(face.box, width, height), (size, size),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def _score_liveness(self, refined: list[list[Face]], crops: list[np.ndarray]) -> list[list[Face]]:
        """Attach each kept face's liveness score (crops in the same order as the faces)."""
        if self.liveness is None or not crops:
            return refined
        scores = iter(self.liveness.score_crops(np.stack(crops)).tolist())
        return [[replace(face, liveness_score=next(scores)) for face in faces] for faces in refined]

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
            # BlazeFace's own key points stand in until FaceMesh refines them (see _refine).
            faces.append(Face(box=(x0, y0, x1, y1), score=score,
                              landmarks=(points[:4] * letterbox.scale).astype(np.float32), landmark_score=0.0))
        return faces
