"""Presentation-attack detection metrics as ISO/IEC 30107-3 names them (higher score = more likely live).

APCER: share of attack presentations accepted as live. BPCER: share of bona fide (live)
presentations rejected. A presentation is accepted when its score is at least the threshold.
"""

from __future__ import annotations

import numpy as np

from facemodels.evaluation import metrics


def apcer(attack: np.ndarray, threshold: float) -> float:
    return float(np.mean(attack >= threshold))


def bpcer(live: np.ndarray, threshold: float) -> float:
    return float(np.mean(live < threshold))


def threshold_at_bpcer(live: np.ndarray, target: float) -> float:
    """Highest threshold (one of the live scores) that rejects at most ``target`` of the live faces."""
    ordered = np.sort(live)
    return float(ordered[min(int(np.floor(target * len(ordered))), len(ordered) - 1)])


def equal_error_threshold(live: np.ndarray, attack: np.ndarray) -> float:
    """The observed score where APCER and BPCER are closest (the EER point)."""
    candidates = np.unique(np.concatenate([live, attack]))
    gaps = [abs(apcer(attack, t) - bpcer(live, t)) for t in candidates]
    return float(candidates[int(np.argmin(gaps))])


def auc(live: np.ndarray, attack: np.ndarray) -> float:
    """P(a live face scores above an attack), ties half: 0.5 is chance, below 0.5 is backwards."""
    # metrics.roc_auc takes distances (smaller = genuine): negated scores are exactly that.
    return metrics.roc_auc(-live, -attack)
