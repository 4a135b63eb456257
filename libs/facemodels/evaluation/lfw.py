"""Verification on an LFW-layout folder: ``images/<Name>/<Name>_<NNNN>.jpg`` and ``pairs.tsv``."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceauth.errors import InvalidInput
from faceauth.images import decode_image
from facemodels.detector import FaceDetector
from facemodels.embedder import FaceEmbedder
from facemodels.evaluation import metrics
from facemodels.faces import Face

BATCH = 16
# Operating points calibrated: 1e-3 and 1e-4 for 1:1; the stricter ones hold the FMR of a decision that
# compares several templates or a whole gallery (faceauth_auth.matching). With ~23 M impostor pairs,
# 1e-6 rests on ~23 pairs: usable, but the least certain.
CALIBRATED_EXPONENTS = (3, 4, 5, 6)


@dataclass
class LfwResult:
    accuracy: float
    tar_at_fmr_1e3: float
    tar_at_fmr_1e4: float
    threshold_1e3: float
    threshold_1e4: float
    roc_auc: float
    heldout_fmr_1e3: float  # FMR on identities the threshold was not calibrated on (heldout_fmr)
    heldout_fmr_1e4: float
    thresholds: dict[str, float]  # by operating point ("fmr_1e-3" ... "fmr_1e-6"), as models.lock.json keeps them
    detect_fail_rate: float
    images: int
    genuine_pairs: int
    impostor_pairs: int
    images_per_s: float


def _pairs(root: Path) -> list[tuple[str, str, bool]]:
    with (root / "pairs.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    def path(name: str, index: str) -> str:
        return f"{name}/{name}_{int(index):04d}.jpg"
    return [(path(r["name_a"], r["index_a"]), path(r["name_b"], r["index_b"]), r["same"] == "1") for r in rows]


def central_face(faces: list[Face], image: np.ndarray) -> Face | None:
    """LFW centres the labelled person: take the detected face nearest the image centre."""
    if not faces:
        return None
    image_centre = np.array(image.shape[1::-1], dtype=np.float32) / 2

    def offset(face: Face) -> float:
        box_centre = (np.array(face.box[:2]) + np.array(face.box[2:])) / 2
        return float(np.sum((box_centre - image_centre) ** 2))

    return min(faces, key=offset)


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def embed_folder(root: Path, detector: FaceDetector, embedder: FaceEmbedder,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray | None]:
    """Embedding of every image (``None`` where decoding or detection failed), batched."""
    files = sorted(str(p.relative_to(root / "images")) for p in (root / "images").glob("*/*.jpg"))
    embeddings: dict[str, np.ndarray | None] = {}
    for batch in _batches(files, BATCH):
        decoded = []
        for name in batch:
            try:
                decoded.append((name, decode_image((root / "images" / name).read_bytes())))
            except InvalidInput:
                embeddings[name] = None
        detections = detector.detect_batch([image for _, image in decoded])
        chips, owners = [], []
        for (name, image), faces in zip(decoded, detections, strict=True):
            face = central_face(faces, image)
            if face is None:
                embeddings[name] = None
                continue
            chips.append(embedder.align(image, face.landmarks))
            owners.append(name)
        for name, vector in zip(owners, embedder.embed_chips(chips), strict=True):
            embeddings[name] = vector
        if progress:
            progress(len(embeddings), len(files))
    return embeddings


def evaluate(root: Path, detector: FaceDetector, embedder: FaceEmbedder,
             progress: Callable[[int, int], None] | None = None) -> LfwResult:
    """Run the whole pipeline over the folder and score it.

    Listed pairs give the 10-fold accuracy and the genuine distances; impostors are *every*
    cross-identity pair of embedded images. A pair with an image we could not embed counts as a
    rejection (a miss for genuine pairs), as a user would experience it.
    """
    started = time.perf_counter()
    embeddings = embed_folder(root, detector, embedder, progress)
    elapsed = time.perf_counter() - started

    pairs = _pairs(root)
    distances = np.array([_distance(embeddings.get(a), embeddings.get(b)) for a, b, _ in pairs])
    same = np.array([s for _, _, s in pairs])
    genuine = distances[same]

    names = [n for n, v in embeddings.items() if v is not None]
    matrix = np.stack([embeddings[n] for n in names])  # type: ignore[misc]
    identity = np.array([n.split("/")[0] for n in names])
    impostor = _impostor_distances(matrix, identity)

    threshold_1e3 = metrics.threshold_at_fmr(impostor, 1e-3)
    threshold_1e4 = metrics.threshold_at_fmr(impostor, 1e-4)
    failed = sum(v is None for v in embeddings.values())
    return LfwResult(
        accuracy=metrics.kfold_accuracy(distances, same),
        tar_at_fmr_1e3=metrics.tar_at_threshold(genuine, threshold_1e3),
        tar_at_fmr_1e4=metrics.tar_at_threshold(genuine, threshold_1e4),
        threshold_1e3=threshold_1e3,
        threshold_1e4=threshold_1e4,
        roc_auc=metrics.roc_auc(genuine, impostor),
        heldout_fmr_1e3=heldout_fmr(matrix, identity, 1e-3),
        heldout_fmr_1e4=heldout_fmr(matrix, identity, 1e-4),
        thresholds={f"fmr_1e-{exponent}": metrics.threshold_at_fmr(impostor, 10.0 ** -exponent)
                    for exponent in CALIBRATED_EXPONENTS},
        detect_fail_rate=failed / len(embeddings),
        images=len(embeddings),
        genuine_pairs=int(same.sum()),
        impostor_pairs=len(impostor),
        images_per_s=len(embeddings) / elapsed,
    )


_UNUSABLE = 4.0  # farther than any two unit vectors can be: never a match


def _distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return _UNUSABLE
    return float(np.linalg.norm(a - b))


def heldout_fmr(matrix: np.ndarray, identity: np.ndarray, target: float) -> float:
    """The false-match rate a threshold calibrated for ``target`` gives on identities it never saw.

    The identities are split in two halves; the threshold is calibrated on the impostor pairs of one
    half and the false-match rate measured on those of the other, both ways round; the worse is
    returned. New users are other people than the calibration set, so this is what they get.
    """
    names = np.unique(identity)
    first = np.isin(identity, names[::2])
    worst = 0.0
    for calibration, held_out in ((first, ~first), (~first, first)):
        threshold = metrics.threshold_at_fmr(_impostor_distances(matrix[calibration], identity[calibration]), target)
        worst = max(worst, float(np.mean(_impostor_distances(matrix[held_out], identity[held_out]) < threshold)))
    return worst


def _impostor_distances(matrix: np.ndarray, identity: np.ndarray) -> np.ndarray:
    """All cross-identity distances, computed block-wise to bound memory (unit vectors: d^2 = 2 - 2ab)."""
    chunks = []
    for start in range(0, len(matrix), 1024):
        block = matrix[start:start + 1024]
        squared = np.clip(2.0 - 2.0 * block @ matrix.T, 0.0, None)
        rows = np.arange(start, start + len(block))[:, None]
        upper = np.arange(len(matrix))[None, :] > rows
        different = identity[start:start + len(block)][:, None] != identity[None, :]
        chunks.append(np.sqrt(squared[upper & different]))
    return np.concatenate(chunks)
