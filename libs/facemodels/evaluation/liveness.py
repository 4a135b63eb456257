"""``python -m facemodels.evaluation.liveness``: APCER/BPCER of the liveness models on printed-photo attacks.

Expects the NUAA-style layout of ``../shared/datasets/antispoof_print``: ``ClientFace/<subject>/*.jpg``
(live, bona fide) and ``ImposterFace/<subject>/*.jpg`` (photos of printed photos). Every image goes
through the real detector and the face it finds is scored in the detector's own batched call. The
operating point is the threshold at BPCER <= 5 % on all subjects; because there are only a handful of
subjects, a leave-one-subject-out check re-picks that threshold without each subject and scores the
subject left out, so the figures are not tuned to the very images they are measured on.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceauth.images import decode_image
from facemodels.detector import FaceDetector
from facemodels.evaluation import pad
from facemodels.evaluation.lfw import BATCH, central_face

LIVE_FOLDER, ATTACK_FOLDER = "ClientFace", "ImposterFace"
TARGET_BPCER = 0.05
REPORTED_THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass
class Scores:
    """One score per image whose face was found, with its subject and whether it was live."""

    values: np.ndarray
    live: np.ndarray  # bool
    subjects: np.ndarray  # str
    not_found: int


def score_dataset(root: Path, detector: FaceDetector, every: int = 1) -> Scores:
    """Detect and score every ``every``-th image of each class; images without a face are counted, not scored."""
    files = [path for folder in (LIVE_FOLDER, ATTACK_FOLDER)
             for path in sorted(root.glob(f"{folder}/*/*.jpg"))[::every]]
    values, live, subjects, not_found = [], [], [], 0
    for start in range(0, len(files), BATCH):
        batch = files[start:start + BATCH]
        images = [decode_image(path.read_bytes()) for path in batch]
        for path, image, faces in zip(batch, images, detector.detect_batch(images), strict=True):
            face = central_face(faces, image)
            if face is None or face.liveness_score is None:
                not_found += 1
                continue
            values.append(face.liveness_score)
            live.append(path.parent.parent.name == LIVE_FOLDER)
            subjects.append(path.parent.name)
    return Scores(np.array(values), np.array(live, bool), np.array(subjects), not_found)


def leave_subject_out(scores: Scores) -> dict[str, dict[str, float]]:
    """Per subject: the BPCER-5 % threshold picked on the other subjects, and the errors it gives on this one."""
    result = {}
    for subject in np.unique(scores.subjects):
        held_out = scores.subjects == subject
        threshold = pad.threshold_at_bpcer(scores.values[~held_out & scores.live], TARGET_BPCER)
        result[str(subject)] = {
            "threshold": threshold,
            "apcer": pad.apcer(scores.values[held_out & ~scores.live], threshold),
            "bpcer": pad.bpcer(scores.values[held_out & scores.live], threshold),
            "auc": pad.auc(scores.values[held_out & scores.live], scores.values[held_out & ~scores.live]),
        }
    return result


def summarise(scores: Scores, shipped_threshold: float) -> dict[str, object]:
    """The figures docs/security.md publishes; ``shipped_threshold`` is the one models.lock.json holds now."""
    live, attack = scores.values[scores.live], scores.values[~scores.live]
    chosen = pad.threshold_at_bpcer(live, TARGET_BPCER)
    eer_threshold = pad.equal_error_threshold(live, attack)
    held_out = leave_subject_out(scores)
    return {
        "live_images": len(live),
        "attack_images": len(attack),
        "faces_not_found": scores.not_found,
        "mean_score_live": round(float(live.mean()), 4),
        "mean_score_attack": round(float(attack.mean()), 4),
        "auc": round(pad.auc(live, attack), 4),
        "eer": round((pad.apcer(attack, eer_threshold) + pad.bpcer(live, eer_threshold)) / 2, 4),
        "eer_threshold": round(eer_threshold, 4),
        "threshold_bpcer_5pct": math.floor(chosen * 1e4) / 1e4,  # rounded down: stays within the 5 %
        "apcer_at_bpcer_5pct": round(pad.apcer(attack, chosen), 4),
        "bpcer_at_threshold": round(pad.bpcer(live, chosen), 4),
        "shipped_threshold": shipped_threshold,
        "apcer_at_shipped": round(pad.apcer(attack, shipped_threshold), 4),
        "bpcer_at_shipped": round(pad.bpcer(live, shipped_threshold), 4),
        "table": [{"threshold": t, "apcer": round(pad.apcer(attack, t), 4), "bpcer": round(pad.bpcer(live, t), 4)}
                  for t in REPORTED_THRESHOLDS],
        "leave_subject_out": {subject: {k: round(v, 4) for k, v in figures.items()}
                              for subject, figures in held_out.items()},
        "leave_subject_out_apcer": round(_pooled(scores, held_out, live=False), 4),
        "leave_subject_out_bpcer": round(_pooled(scores, held_out, live=True), 4),
    }


def _pooled(scores: Scores, held_out: dict[str, dict[str, float]], live: bool) -> float:
    """Error rate over all images when each is judged by the threshold picked without its subject."""
    thresholds = np.array([held_out[str(subject)]["threshold"] for subject in scores.subjects])
    mine = scores.live == live
    wrong = scores.values[mine] < thresholds[mine] if live else scores.values[mine] >= thresholds[mine]
    return float(np.mean(wrong))


def _print_report(name: str, summary: dict[str, object]) -> None:
    print(f"{name}: {summary['live_images']} live, {summary['attack_images']} attack images scored, "
          f"{summary['faces_not_found']} without a face; AUC {summary['auc']}, EER {summary['eer']} "
          f"at {summary['eer_threshold']}; BPCER <= 5 % at threshold {summary['threshold_bpcer_5pct']} "
          f"gives APCER {summary['apcer_at_bpcer_5pct']}; leave-one-subject-out APCER "
          f"{summary['leave_subject_out_apcer']}, BPCER {summary['leave_subject_out_bpcer']}; the shipped threshold "
          f"{summary['shipped_threshold']} gives APCER {summary['apcer_at_shipped']}, "
          f"BPCER {summary['bpcer_at_shipped']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="folder with ClientFace/ and ImposterFace/")
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("FACEAUTH_MODEL_DIR", "var/models")))
    parser.add_argument("--model", action="append", dest="names",
                        help="liveness model to evaluate (a name in models.lock.json); repeat for several")
    parser.add_argument("--every", type=int, default=1, help="score every n-th image of each class (a quick look)")
    args = parser.parse_args(argv)
    results = {}
    for name in args.names or ["liveness", "antispoof"]:
        detector = FaceDetector.load(args.models, liveness_model=name)
        assert detector.liveness is not None
        results[name] = summarise(score_dataset(args.dataset, detector, args.every), detector.liveness.threshold)
        _print_report(name, results[name])
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
