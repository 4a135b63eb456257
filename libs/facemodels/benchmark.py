"""``python -m facemodels.benchmark``: speed of the model package itself, on real photos.

Figures are medians over repeated runs after warm-up; timed tests would flake on a busy machine,
so speed lives here and in docs/performance.md, not in the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from faceauth.images import decode_image
from facemodels.detector import FaceDetector
from facemodels.embedder import FaceEmbedder
from facemodels.faces import Face
from facemodels.liveness import DEFAULT_MODEL as DEFAULT_LIVENESS_MODEL

LIVENESS_MODELS = ("liveness", "antispoof", "faceantispoofing")

BASELINE_EMBEDDER = "dlib-resnet"


def median_ms(action: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def rss_mib() -> float:
    """Resident set size of this process now, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def on_canvas(path: Path) -> np.ndarray:
    """A 640x480 photo with one face: the LFW photo enlarged onto a plain 640x480 background."""
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[40:440, 120:520] = cv2.resize(decode_image(path.read_bytes()), (400, 400))
    return canvas


def sample_photos(lfw: Path, count: int) -> list[np.ndarray]:
    """640x480 photos of ``count`` different people."""
    return [on_canvas(path) for path in sorted((lfw / "images").glob("*/*_0001.jpg"))[:count]]


def embedding_figures(embedder: FaceEmbedder, photos: list[np.ndarray], faces: list[Face],
                      repeats: int) -> dict[str, float]:
    """Embedding time per face at batch 1 and 16 (the mirror image included where the model uses one)."""
    chips = [embedder.align(photo, face.landmarks) for photo, face in zip(photos, faces, strict=True)]
    return {"embed_batch1_ms": median_ms(lambda: embedder.embed_chips(chips[:1]), repeats),
            "embed_batch16_ms_per_face": median_ms(lambda: embedder.embed_chips(chips), repeats // 5) / 16}


def liveness_figures(models: Path, photos: list[np.ndarray], repeats: int) -> dict[str, float]:
    """What each liveness model adds to detecting one 640x480 photo with one face: the median with it
    minus the median without, measured in alternating rounds so that both see the same machine load."""
    plain = FaceDetector.load(models)
    figures = {}
    for name in LIVENESS_MODELS:
        scored = FaceDetector.load(models, liveness_model=name)
        with_model, without = [], []
        for photo in photos[:5]:
            with_model.append(median_ms(lambda d=scored, p=photo: d.detect(p), repeats // 5))  # type: ignore[misc]
            without.append(median_ms(lambda p=photo: plain.detect(p), repeats // 5))  # type: ignore[misc]
        figures[f"liveness_{name}_ms_per_face"] = statistics.median(with_model) - statistics.median(without)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=Path("../shared/datasets/lfw"))
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("FACEAUTH_MODEL_DIR", "var/models")))
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)

    # As the detector service runs it: the default liveness model scores every face.
    detector = FaceDetector.load(args.models, liveness_model=DEFAULT_LIVENESS_MODEL)
    embedder = FaceEmbedder.load(args.models)
    photos = sample_photos(args.lfw, 16)
    faces = [detector.detect(photo)[0] for photo in photos]
    jpeg = cv2.imencode(".jpg", photos[0][:, :, ::-1])[1].tobytes()

    rounds = iter(range(10**9))
    figures = {
        "decode_jpeg_640x480_ms": median_ms(lambda: decode_image(jpeg), args.repeats),
        "detect_640x480_ms": median_ms(lambda: detector.detect(photos[next(rounds) % 16]), args.repeats),
        "align_ms": median_ms(lambda: embedder.align(photos[0], faces[0].landmarks), args.repeats),
        **embedding_figures(embedder, photos, faces, args.repeats),
        "detect_batch8_ms_per_photo": median_ms(lambda: detector.detect_batch(photos[:8]), args.repeats // 5) / 8,
        "rss_mib_both_models": rss_mib(),
    }
    # The embedder it replaced, in the same run: an upgrade must not cost more per face.
    baseline = embedding_figures(FaceEmbedder.load(args.models, BASELINE_EMBEDDER), photos, faces, args.repeats)
    for name, value in baseline.items():
        figures[f"{BASELINE_EMBEDDER}_{name}"] = value
        figures[f"{name}_ratio_to_{BASELINE_EMBEDDER}"] = figures[name] / value
    figures.update(liveness_figures(args.models, photos, args.repeats))
    width = max(len(k) for k in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
