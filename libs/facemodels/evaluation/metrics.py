"""Verification metrics over genuine and impostor distances (smaller distance = more alike)."""

from __future__ import annotations

import numpy as np


def threshold_at_fmr(impostor: np.ndarray, fmr: float) -> float:
    """Largest threshold whose false-match rate (impostor distance < threshold) is at most ``fmr``."""
    ordered = np.sort(impostor)
    allowed = int(np.floor(fmr * len(ordered)))
    return float(ordered[allowed]) if allowed < len(ordered) else float(ordered[-1])


def tar_at_threshold(genuine: np.ndarray, threshold: float) -> float:
    return float(np.mean(genuine < threshold))


def roc_auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """P(an impostor distance exceeds a genuine one), ties counted half: the Mann-Whitney statistic."""
    ordered = np.sort(impostor)
    above = len(ordered) - np.searchsorted(ordered, genuine, side="right")
    ties = np.searchsorted(ordered, genuine, side="right") - np.searchsorted(ordered, genuine, side="left")
    return float((above + 0.5 * ties).sum() / (len(genuine) * len(ordered)))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold that maximises accuracy on these labelled pairs."""
    candidates = np.unique(distances)
    midpoints = np.concatenate(
        [[candidates[0] - 1e-6], (candidates[:-1] + candidates[1:]) / 2, [candidates[-1] + 1e-6]])
    accuracies = [np.mean((distances < t) == same) for t in midpoints]
    return float(midpoints[int(np.argmax(accuracies))])


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, folds: int = 10) -> float:
    """LFW protocol: pick the threshold on nine folds, score the tenth, average over the ten."""
    fold_of = np.arange(len(distances)) % folds
    scores = []
    for fold in range(folds):
        train, test = fold_of != fold, fold_of == fold
        threshold = best_threshold(distances[train], same[train])
        scores.append(np.mean((distances[test] < threshold) == same[test]))
    return float(np.mean(scores))

