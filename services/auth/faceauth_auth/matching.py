"""Match decisions: Euclidean distance between unit embeddings against the calibrated threshold.

A match is ``distance < threshold`` (docs/models.md). The confidence shown to clients maps the
distance linearly onto [0, 1] so that the threshold sits at 0.5: 1 for identical embeddings, 0 at
twice the threshold or beyond, in steps of 0.1. The raw distance only goes to metrics, logs and the audit table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from faceauth_auth import metrics

CONFIDENCE_STEPS = 10


@dataclass(frozen=True)
class Decision:
    match: bool
    distance: float
    threshold: float

    @property
    def confidence(self) -> float:
        """Coarse on purpose, in steps of 0.1 (rounded down): finer steps would hand a caller tuning a forged
        face the distance itself."""
        fine = float(np.clip(1.0 - self.distance / (2.0 * self.threshold), 0.0, 1.0))
        return math.floor(fine * CONFIDENCE_STEPS + 1e-9) / CONFIDENCE_STEPS


def nearest_distance(probe: np.ndarray, templates: np.ndarray) -> tuple[int, float]:
    """Index and distance of the template nearest to ``probe``; templates is (N, D) with N >= 1."""
    distances = np.linalg.norm(templates - probe[None, :], axis=1)
    best = int(np.argmin(distances))
    return best, float(distances[best])


def decide(distance: float, threshold: float) -> Decision:
    """The decision for this distance; every decision is counted in faceauth_match_distance."""
    decision = Decision(distance < threshold, distance, threshold)
    metrics.match_distance.labels("genuine" if decision.match else "impostor").observe(distance)
    return decision
