"""Plain data passed between the face pipeline, matching and storage."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The order of DetectorService's five landmarks (proto/faceauth/v1/common.proto).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class EmbeddingModel:
    """The model behind an embedding: embeddings of two different models are never compared."""

    name: str
    version: int
    dimensions: int

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"


DEFAULT_FMR = 1e-3  # the "default" operating point: NIST SP 800-63B's floor for biometrics
STRICT_FMR = 1e-4


@dataclass(frozen=True)
class ModelInfo:
    """An embedding model the embedder serves, with the distance thresholds calibrated for it."""

    model: EmbeddingModel
    default_threshold: float  # FMR 1e-3
    strict_threshold: float  # FMR 1e-4
    # Every calibrated (FMR, distance), loosest first; empty: just the two above.
    calibrated: tuple[tuple[float, float], ...] = ()

    def threshold(self, operating_point: str, comparisons: int = 1) -> float:
        """The threshold that holds the operating point's FMR for one decision over ``comparisons``
        comparisons: matching the nearest of k templates, or of a gallery of N, is k or N chances to
        match falsely, so each comparison must be k or N times stricter."""
        target = STRICT_FMR if operating_point == "strict" else DEFAULT_FMR
        return self.threshold_at(target / max(comparisons, 1))

    def threshold_at(self, fmr: float) -> float:
        """The distance threshold for a false match rate: log-linear between calibrated points, the loosest
        one above them, and extrapolated along the strictest segment below them (stricter, never looser)."""
        points = self.calibrated or ((DEFAULT_FMR, self.default_threshold), (STRICT_FMR, self.strict_threshold))
        logs = [math.log10(rate) for rate, _ in points]
        distances = [distance for _, distance in points]
        target = math.log10(fmr)
        if target >= logs[0] or len(points) == 1:
            return distances[0]
        segment = next((i for i in range(len(points) - 1) if target >= logs[i + 1]), len(points) - 2)
        slope = (distances[segment + 1] - distances[segment]) / (logs[segment + 1] - logs[segment])
        return max(distances[segment] + slope * (target - logs[segment]), 0.0)


@dataclass(frozen=True)
class ServedModels:
    """What the model servers run: the primary embedding model (every enrolment), the older ones kept
    for a migration window (users enrolled with them can still log in, and move to the primary one),
    and the detector's liveness operating point."""

    primary: ModelInfo
    legacy: tuple[ModelInfo, ...] = ()
    liveness_threshold: float | None = None  # None without a liveness model

    def find(self, name: str, version: int) -> ModelInfo | None:
        """The served model of this name and version, if it is served."""
        return next((info for info in (self.primary, *self.legacy)
                     if (info.model.name, info.model.version) == (name, version)), None)


@dataclass(frozen=True)
class Quality:
    """Whether a face is good enough to enrol or log in with, and why not."""

    sharpness: float | None  # the detector's blur measure (faceauth_detector.sharpness); None if not measured
    reasons: tuple[str, ...]  # empty when usable: face_too_small, face_too_blurry

    @property
    def usable(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class DetectedFace:
    """One face as the detector found it, with the auth service's quality verdict."""

    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max
    score: float
    landmarks: np.ndarray  # (5, 2), LANDMARK_NAMES order
    landmark_score: float
    yaw_degrees: float
    quality: Quality
    liveness_score: float | None = None  # higher = more likely live; None when the detector runs no liveness model

    @property
    def size(self) -> float:
        """The shorter side of the box in pixels."""
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


@dataclass(frozen=True)
class Detection:
    """Every face found in one photo, best first, in the pixels of the upright image."""

    width: int
    height: int
    faces: list[DetectedFace]


@dataclass(frozen=True)
class Probe:
    """The embedding of the one usable face of an uploaded photo, by the primary model and by the
    legacy models asked for."""

    embedding: np.ndarray  # (D,) float32, unit length, by the primary model
    info: ModelInfo  # the primary model
    liveness_score: float | None = None  # of the face that was embedded
    liveness_threshold: float | None = None  # the detector's operating point; None without a liveness model
    legacy: tuple[tuple[ModelInfo, np.ndarray], ...] = ()  # the same face by each legacy model asked for
    yaw_degrees: float = 0.0  # of the face that was embedded (the detector's estimate; the challenge reads it)

    def by(self, info: ModelInfo) -> np.ndarray:
        """The face's embedding by ``info``'s model (the primary one or a legacy one asked for)."""
        if info == self.info:
            return self.embedding
        return next(embedding for legacy, embedding in self.legacy if legacy == info)
