"""Detection recall and precision on a WIDER FACE-layout folder (``images/`` + ``bbx_gt.txt``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceauth.images import ImageLimits, decode_image
from facemodels.detector import FaceDetector
from facemodels.faces import box_iou

MIN_FACE = 40  # px: faces at least this wide and tall count for the "40 px" recall


@dataclass
class WiderResult:
    recall_all: float
    recall_40px: float
    precision: float
    images: int
    boxes: int
    boxes_40px: int


def read_ground_truth(path: Path) -> dict[str, np.ndarray]:
    """File name -> (N, 5) boxes as x0, y0, x1, y1, invalid flag."""
    lines = iter(path.read_text().split("\n"))
    truth: dict[str, np.ndarray] = {}
    for name in lines:
        if not name.strip():
            continue
        count = int(next(lines))
        rows = [next(lines).split() for _ in range(max(count, 1))][:count]
        boxes = np.array([[float(v) for v in row[:4]] + [float(row[7])] for row in rows]).reshape(-1, 5)
        boxes[:, 2:4] += boxes[:, 0:2]
        truth[name.strip()] = boxes
    return truth


def evaluate(root: Path, detector: FaceDetector) -> WiderResult:
    """IoU >= 0.5 matching, each ground-truth box matched at most once, best detections first."""
    truth = read_ground_truth(root / "bbx_gt.txt")
    limits = ImageLimits(max_bytes=50 * 1024 * 1024)
    found_all = found_40 = total_40 = total = detections = true_detections = 0
    for name, boxes in truth.items():
        image = decode_image((root / "images" / name).read_bytes(), limits)
        faces = detector.detect(image)
        detections += len(faces)
        matched = np.zeros(len(boxes), dtype=bool)
        for face in faces:  # best first
            if not len(boxes):
                break
            overlaps = box_iou(np.array(face.box), boxes[:, :4])
            overlaps[matched] = 0.0
            best = int(np.argmax(overlaps))
            if overlaps[best] >= 0.5:
                matched[best] = True
                true_detections += 1
        valid = boxes[:, 4] == 0
        large = valid & (np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= MIN_FACE)
        total += int(valid.sum())
        found_all += int((matched & valid).sum())
        total_40 += int(large.sum())
        found_40 += int((matched & large).sum())
    return WiderResult(
        recall_all=found_all / max(total, 1),
        recall_40px=found_40 / max(total_40, 1),
        precision=true_detections / max(detections, 1),
        images=len(truth),
        boxes=total,
        boxes_40px=total_40,
    )
