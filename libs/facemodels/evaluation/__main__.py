"""``python -m facemodels.evaluation``: the whole pipeline on LFW and WIDER FACE; last line is JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from facemodels.detector import FaceDetector
from facemodels.embedder import DEFAULT_MODEL, FaceEmbedder
from facemodels.evaluation import lfw, wider
from facemodels.saved import RUNTIMES, Runtime


def _print_progress(done: int, total: int) -> None:
    if done % 512 < lfw.BATCH or done == total:
        print(f"lfw: {done}/{total} images", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None, progress: Callable[[int, int], None] = _print_progress) -> int:
    """Run the evaluation; ``progress(done, total)`` hears about the LFW images as they go."""
    parser = argparse.ArgumentParser(prog="faceauth eval", description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, required=True, help="folder with images/ and pairs.tsv")
    parser.add_argument("--wider", type=Path, required=True, help="folder with images/ and bbx_gt.txt")
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("FACEAUTH_MODEL_DIR", "var/models")))
    parser.add_argument("--embedder", default=os.environ.get("FACEAUTH_EMBEDDER_MODEL", DEFAULT_MODEL),
                        help="embedding model to evaluate (a name in models.lock.json)")
    parser.add_argument("--runtime", choices=RUNTIMES, default=os.environ.get("FACEAUTH_MODEL_RUNTIME", "auto"),
                        help="run the SavedModels or their TFLite forms (auto: TFLite unless a GPU is visible)")
    args = parser.parse_args(argv)

    runtime = Runtime(args.runtime)
    detector = FaceDetector.load(args.models, runtime=runtime)
    embedder = FaceEmbedder.load(args.models, args.embedder, runtime)
    print(f"runtime: {embedder.model.runtime}", flush=True)

    verification = lfw.evaluate(args.lfw, detector, embedder, progress)
    detection = wider.evaluate(args.wider, detector)
    print(f"LFW: {verification.images} images, {verification.genuine_pairs} genuine pairs, "
          f"{verification.impostor_pairs} impostor pairs (all cross-identity pairs)")
    print(f"  thresholds: FMR 1e-3 -> {verification.threshold_1e3:.4f}, FMR 1e-4 -> {verification.threshold_1e4:.4f}")
    print("  all thresholds: " + ", ".join(f"{name} -> {value:.4f}" for name, value in verification.thresholds.items()))
    print(f"  FMR on held-out identities (calibrated on the other half): {verification.heldout_fmr_1e3:.2e} "
          f"for 1e-3, {verification.heldout_fmr_1e4:.2e} for 1e-4")
    print(f"WIDER: {detection.images} images, {detection.boxes} valid boxes ({detection.boxes_40px} >= 40 px), "
          f"recall all sizes {detection.recall_all:.4f}")
    summary = {
        "lfw_accuracy": round(verification.accuracy, 5),
        "tar_at_fmr_1e-3": round(verification.tar_at_fmr_1e3, 5),
        "tar_at_fmr_1e-4": round(verification.tar_at_fmr_1e4, 5),
        "roc_auc": round(verification.roc_auc, 6),
        "heldout_fmr_1e-3": round(verification.heldout_fmr_1e3, 7),
        "heldout_fmr_1e-4": round(verification.heldout_fmr_1e4, 7),
        "threshold": round(verification.threshold_1e3, 5),
        "threshold_fmr_1e-4": round(verification.threshold_1e4, 5),
        "thresholds": {name: round(value, 5) for name, value in verification.thresholds.items()},
        "lfw_detect_fail_rate": round(verification.detect_fail_rate, 5),
        "wider_recall_40px": round(detection.recall_40px, 5),
        "wider_precision": round(detection.precision, 5),
        "images_per_s": round(verification.images_per_s, 2),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
