"""Face embedding: align each face onto the embedder's template, then one batched network call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facemodels.align import align_face
from facemodels.saved import DEFAULT_RUNTIME, Runtime, SavedModel

DEFAULT_MODEL = "mobilefacenet"  # the most accurate embedder in models.lock.json (docs/models.md)


def fmr_of(operating_point: str) -> float:
    """The false match rate an operating point's name stands for: ``fmr_1e-4`` -> 0.0001."""
    return float(operating_point.removeprefix("fmr_"))


class FaceEmbedder:
    """Thread-safe: the SavedModel is loaded once and shared by all callers."""

    def __init__(self, model: SavedModel) -> None:
        self.model = model
        self.chip_size = int(model.metadata["input_size"])
        self.template = np.asarray(model.metadata["template"], dtype=np.float32)
        self.dimensions = int(model.metadata["dimensions"])

    @classmethod
    def load(cls, model_dir: Path, name: str = DEFAULT_MODEL, runtime: Runtime = DEFAULT_RUNTIME) -> FaceEmbedder:
        return cls(SavedModel.load(model_dir, name, runtime))

    @property
    def thresholds(self) -> dict[str, float]:
        """Calibrated Euclidean distance thresholds by operating point (``fmr_1e-3`` ... ``fmr_1e-6``)."""
        return {k: float(v) for k, v in self.model.metadata["thresholds"].items()}

    def align(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The chip the network expects for a face with these landmarks."""
        return align_face(image, landmarks, self.template, self.chip_size)

    def embed_chips(self, chips: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, D) L2-normalised float32 embeddings of aligned chips; deterministic for equal input."""
        if len(chips) == 0:
            return np.zeros((0, self.dimensions), np.float32)
        return self.model.run(chips=np.asarray(chips, dtype=np.uint8))["embeddings"]

    def embed(self, image: np.ndarray, landmarks: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings of the faces with ``landmarks`` in one image."""
        return self.embed_chips([self.align(image, points) for points in landmarks])
