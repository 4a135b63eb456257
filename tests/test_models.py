"""The real detector and embedder on real faces from ../shared/datasets."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceauth.images import ImageLimits, decode_image
from facemodels.detector import FaceDetector
from facemodels.embedder import FaceEmbedder
from facemodels.evaluation.lfw import central_face
from facemodels.evaluation.wider import read_ground_truth


def _image(lfw: Path, name: str, index: int) -> np.ndarray:
    return decode_image((lfw / "images" / name / f"{name}_{index:04d}.jpg").read_bytes())


def _embedding(detector: FaceDetector, embedder: FaceEmbedder, image: np.ndarray) -> np.ndarray:
    face = central_face(detector.detect(image), image)
    assert face is not None
    return embedder.embed(image, [face.landmarks])[0]


def _sample_pairs(lfw: Path, same: bool, count: int) -> list[tuple[str, int, str, int]]:
    with (lfw / "pairs.tsv").open() as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if (r["same"] == "1") == same]
    picked = random.Random(7).sample(rows, count)
    return [(r["name_a"], int(r["index_a"]), r["name_b"], int(r["index_b"])) for r in picked]


@pytest.mark.parametrize("same", [True, False], ids=["same-person", "different-people"])
def test_distance_against_calibrated_threshold(lfw: Path, detector: FaceDetector, embedder: FaceEmbedder,
                                               same: bool) -> None:
    """On a random sample of listed LFW pairs, decisions at the shipped threshold are right."""
    threshold = embedder.thresholds["fmr_1e-3"]
    pairs = _sample_pairs(lfw, same, 40)
    correct = 0
    for name_a, index_a, name_b, index_b in pairs:
        a = _embedding(detector, embedder, _image(lfw, name_a, index_a))
        b = _embedding(detector, embedder, _image(lfw, name_b, index_b))
        correct += (float(np.linalg.norm(a - b)) < threshold) == same
    # At FMR 1e-3 about 94 % of genuine pairs match and almost no impostor does.
    assert correct >= (36 if same else 40)


def test_embeddings_are_unit_length_deterministic_and_batch_independent(
        lfw: Path, detector: FaceDetector, embedder: FaceEmbedder) -> None:
    images = [_image(lfw, "Abel_Pacheco", i) for i in (1, 2, 3, 4)]
    chips = [embedder.align(image, central_face(detector.detect(image), image).landmarks)  # type: ignore[union-attr]
             for image in images]
    batched = embedder.embed_chips(chips)
    one_by_one = np.concatenate([embedder.embed_chips([chip]) for chip in chips])
    assert batched.shape == (4, embedder.dimensions)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)
    np.testing.assert_array_equal(embedder.embed_chips(chips), embedder.embed_chips(chips))


def test_five_landmarks_sit_where_a_face_has_them(lfw: Path, detector: FaceDetector) -> None:
    for name in ("Aaron_Eckhart", "Abel_Pacheco", "Adam_Sandler"):
        image = _image(lfw, name, 1)
        face = central_face(detector.detect(image), image)
        assert face is not None and face.score > 0.7 and face.landmark_score > 0.9
        left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
        assert left_eye[0] < nose[0] < right_eye[0]
        assert mouth_left[0] < nose[0] < mouth_right[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
        x0, y0, x1, y1 = face.box
        assert x0 < left_eye[0] and right_eye[0] < x1 and y0 < left_eye[1] and max(mouth_left[1], mouth_right[1]) < y1


def _wider_image(wider: Path, name: str) -> np.ndarray:
    return decode_image((wider / "images" / name).read_bytes(), ImageLimits(max_bytes=50 << 20))


def test_a_crowd_photo_gives_several_faces(wider: Path, detector: FaceDetector) -> None:
    truth = read_ground_truth(wider / "bbx_gt.txt")
    def large_faces(boxes: np.ndarray) -> int:
        return int(((boxes[:, 2] - boxes[:, 0] >= 60) & (boxes[:, 4] == 0)).sum())
    name = max(truth, key=lambda n: large_faces(truth[n]))
    assert large_faces(truth[name]) >= 3
    assert len(detector.detect(_wider_image(wider, name))) >= 3


def test_a_photo_region_without_faces_gives_none(wider: Path, detector: FaceDetector) -> None:
    """Real photo content with no face in it: the part of a WIDER image far from every labelled box."""
    truth = read_ground_truth(wider / "bbx_gt.txt")
    tried = 0
    for name, boxes in sorted(truth.items()):
        image = _wider_image(wider, name)
        height = image.shape[0]
        bottom = int(boxes[:, 3].max()) + 20 if len(boxes) else 0
        if height - bottom < 160:
            continue
        assert detector.detect(image[bottom:]) == [], name
        tried += 1
        if tried == 5:
            break
    assert tried == 5


def test_blank_and_noise_images_give_no_face(detector: FaceDetector) -> None:
    rng = np.random.default_rng(0)
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    assert detector.detect(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)) == []


def test_faces_of_40_px_in_a_640x480_photo_are_found(lfw: Path, detector: FaceDetector) -> None:
    """LFW faces span about 100 of the photo's 250 px; shrink the photo so the face is ~40 px wide."""
    found = 0
    files = sorted((lfw / "images").glob("B*/*_0001.jpg"))[:20]
    for path in files:
        small = cv2.resize(decode_image(path.read_bytes()), (100, 100), interpolation=cv2.INTER_AREA)
        canvas = np.full((480, 640, 3), 120, np.uint8)
        canvas[190:290, 200:300] = small
        faces = detector.detect(canvas)
        found += any(30 <= face.width <= 60 for face in faces)
    assert found == len(files)
