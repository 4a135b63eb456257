"""MediaPipe BlazeFace full-range (``blazeface-back``): anchors, decoding and suppression.

The network sees a 256x256 letter-boxed image and predicts, for each of 896 anchors, a score and a
box with six key points, all as offsets in input pixels from the anchor centre.
"""

from __future__ import annotations

import numpy as np

from facemodels.faces import box_iou

INPUT_SIZE = 256
# (grid size, anchors per cell): 16x16x2 then 8x8x6, in the network's output order.
_LAYERS = ((16, 2), (8, 6))


def anchor_centres() -> np.ndarray:
    """Anchor centres as (896, 2) fractions of the input, in the network's output order."""
    centres = []
    for grid, per_cell in _LAYERS:
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cells = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(cells, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray) -> tuple[np.ndarray, ...]:
    """Turn raw outputs (896, 16) and (896,) into boxes (896, 4), scores and key points (896, 6, 2).

    Coordinates come out as fractions of the 256-px input.
    """
    scale = float(INPUT_SIZE)
    centre = anchors + raw_boxes[:, 0:2] / scale
    half_size = raw_boxes[:, 2:4] / scale / 2.0
    boxes = np.concatenate([centre - half_size, centre + half_size], axis=1)
    keypoints = anchors[:, None, :] + raw_boxes[:, 4:16].reshape(-1, 6, 2) / scale
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.astype(np.float64), -100.0, 100.0)))
    return boxes, scores, keypoints


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray,
                 score_threshold: float, iou_threshold: float) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's blending suppression: overlapping candidates are averaged, weighted by score.

    Averaging steadies boxes and key points across frames better than keeping the single best one.
    """
    order = np.argsort(-scores)
    order = order[scores[order] >= score_threshold]
    results = []
    while order.size:
        best = order[0]
        overlaps = box_iou(boxes[best], boxes[order])
        cluster = order[overlaps >= iou_threshold]
        weights = scores[cluster][:, None]
        blended_box = (boxes[cluster] * weights).sum(0) / weights.sum()
        blended_kps = (keypoints[cluster] * weights[:, :, None]).sum(0) / weights.sum()
        results.append((blended_box, float(scores[best]), blended_kps))
        order = order[overlaps < iou_threshold]
    return results

