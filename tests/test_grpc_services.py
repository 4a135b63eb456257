"""The detector and embedder gRPC services in this process, on real models and real LFW photos.

Servers listen on ephemeral localhost ports; every answer is compared with the model package
called directly on the same photo.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from faceauth import logs
from faceauth.grpc import landmarks
from faceauth.grpc.batcher import BatchSettings
from faceauth.grpc.client import DetectorClient, EmbedderClient, RetryPolicy
from faceauth.grpc.launch import health_status, scrape, total
from faceauth.grpc.metrics import Metrics
from faceauth.grpc.server import ModelServer, ModelServicer
from faceauth.grpc.settings import ServingSettings
from faceauth.grpc.status import ERROR_CODE_KEY
from faceauth.images import DECODE_BUDGET, decode_image
from faceauth.logs import JsonFormatter
from faceauth.v1 import common_pb2
from faceauth_detector.pose import yaw_degrees
from faceauth_detector.servicer import DetectorServicer
from faceauth_detector.sharpness import sharpness
from faceauth_embedder.servicer import MAX_FACES, EmbedderServicer
from facemodels.detector import FaceDetector
from facemodels.embedder import FaceEmbedder
from facemodels.evaluation.lfw import central_face

PHOTOS = 32
EMBED = "/faceauth.v1.EmbedderService/Embed"
Result = TypeVar("Result")


@dataclass(frozen=True)
class Photo:
    """One LFW photo and what the model package says about it when called directly."""

    data: bytes
    image: np.ndarray
    landmarks: np.ndarray  # of the central face
    embedding: np.ndarray


@pytest.fixture(scope="module")
def photos(lfw: Path, detector: FaceDetector, embedder: FaceEmbedder) -> list[Photo]:
    """One photo of each of the first LFW identities in which the detector finds the central face."""
    found = []
    for path in sorted((lfw / "images").glob("*/*_0001.jpg"))[:PHOTOS + 8]:
        data = path.read_bytes()
        image = decode_image(data)
        face = central_face(detector.detect(image), image)
        if face is not None:
            found.append(Photo(data, image, face.landmarks, embedder.embed(image, [face.landmarks])[0]))
    assert len(found) >= PHOTOS
    return found[:PHOTOS]


@contextmanager
def listening(servicer_type: Callable[[ServingSettings, Metrics], ModelServicer], model_dir: Path,
              batching: BatchSettings, *, reflection: bool = False) -> Iterator[ModelServer]:
    """A started server on ephemeral localhost ports whose model is not loaded yet."""
    settings = ServingSettings(model_dir=model_dir, port=0, metrics_port=0, batching=batching,
                               bind_address="127.0.0.1", metrics_address="127.0.0.1", grace_seconds=5,
                               reflection=reflection)
    metrics = Metrics()
    server = ModelServer(servicer_type(settings, metrics), settings, metrics)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serving(servicer_type: Callable[[ServingSettings, Metrics], ModelServicer], model_dir: Path,
            batching: BatchSettings) -> Iterator[ModelServer]:
    with listening(servicer_type, model_dir, batching) as server:
        server.load()
        yield server


BATCHING = BatchSettings(max_batch_size=8, max_queue_delay=0.01, max_queue=64)


@pytest.fixture(scope="module")
def detector_server(model_dir: Path) -> Iterator[ModelServer]:
    with serving(DetectorServicer, model_dir, BATCHING) as server:
        yield server


@pytest.fixture(scope="module")
def embedder_server(model_dir: Path) -> Iterator[ModelServer]:
    with serving(EmbedderServicer, model_dir, BATCHING) as server:
        yield server


def target(server: ModelServer) -> str:
    return f"127.0.0.1:{server.port}"


def landmarks_of(photo: Photo) -> common_pb2.Landmarks:
    return landmarks.to_message(photo.landmarks)


def concurrently(calls: list[Callable[[], Result]]) -> list[Result | grpc.RpcError]:
    """Run every call in its own thread, all released at once; results or errors in order."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], Result]) -> Result | grpc.RpcError:
        start.wait()
        try:
            return call()
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A well-formed PNG header claiming width x height RGB pixels, with no pixel data behind it."""
    size = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", size) + png_chunk(b"IEND", b"")


def error_code(error: grpc.RpcError) -> str | None:
    return dict(error.trailing_metadata() or ()).get(ERROR_CODE_KEY)


def test_health_turns_serving_after_warm_up_and_early_calls_are_retried(model_dir: Path) -> None:
    with listening(DetectorServicer, model_dir, BatchSettings(max_batch_size=2)) as server:
        for name in ("", DetectorServicer.service_name):
            assert health_status(target(server), name) == health_pb2.HealthCheckResponse.NOT_SERVING
        client = DetectorClient(target(server), retry=RetryPolicy(max_attempts=3, initial_backoff=0.01))
        with pytest.raises(grpc.RpcError) as early:
            client.model_info()
        assert early.value.code() == grpc.StatusCode.UNAVAILABLE
        # gRPC retried UNAVAILABLE by itself: the server saw every attempt.
        assert total(scrape(server.metrics_port), "faceauth_grpc_errors_total", code="UNAVAILABLE") == 3
        server.load()
        for name in ("", DetectorServicer.service_name):
            assert health_status(target(server), name) == health_pb2.HealthCheckResponse.SERVING
        assert client.model_info().detector.name == "blazeface"


def listed_services(server: ModelServer) -> list[str]:
    """What server reflection says the server offers (grpcurl list)."""
    with grpc.insecure_channel(target(server)) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                            timeout=5)
        return [service.name for answer in answers for service in answer.list_services_response.service]


def test_reflection_is_off_unless_asked_for(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEAUTH_GRPC_REFLECTION", raising=False)
    assert not ServingSettings.from_env(default_port=0, default_metrics_port=0).reflection
    monkeypatch.setenv("FACEAUTH_GRPC_REFLECTION", "on")
    assert ServingSettings.from_env(default_port=0, default_metrics_port=0).reflection
    with listening(DetectorServicer, model_dir, BatchSettings(max_batch_size=2)) as server:
        with pytest.raises(grpc.RpcError) as refused:
            listed_services(server)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert health_status(target(server)) == health_pb2.HealthCheckResponse.NOT_SERVING  # health still answers
    with listening(DetectorServicer, model_dir, BatchSettings(max_batch_size=2), reflection=True) as server:
        assert DetectorServicer.service_name in listed_services(server)


class JsonLines(logging.Handler):
    """Formats each record when it is emitted, in the thread that answers the call, as production does."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("test"))
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(self.format(record)))


@pytest.fixture
def call_log() -> Iterator[JsonLines]:
    logger = logging.getLogger("faceauth.grpc.calls")
    handler, level = JsonLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_each_call_is_logged_as_json_under_the_callers_request_id(
        detector_server: ModelServer, photos: list[Photo], call_log: JsonLines) -> None:
    client = DetectorClient(target(detector_server))
    token = logs.request_id.set("login-4711")
    try:
        client.detect(photos[0].data)
        with pytest.raises(grpc.RpcError):
            client.detect(b"")
    finally:
        logs.request_id.reset(token)
    mine = [entry for entry in call_log.entries if entry["request_id"] == "login-4711"]
    assert [entry["code"] for entry in mine] == ["OK", "INVALID_ARGUMENT"]
    assert {entry["method"] for entry in mine} == {"/faceauth.v1.DetectorService/Detect"}
    assert all(entry["message"] == "grpc call" and entry["duration_ms"] > 0 for entry in mine)


def test_metrics_endpoint_exports_the_documented_metrics(detector_server: ModelServer, photos: list[Photo]) -> None:
    client = DetectorClient(target(detector_server))
    client.detect(photos[0].data)
    with pytest.raises(grpc.RpcError):
        client.detect(b"not an image")
    samples = scrape(detector_server.metrics_port)
    detect = "/faceauth.v1.DetectorService/Detect"
    assert total(samples, "faceauth_grpc_request_duration_seconds_count", method=detect) >= 2
    assert total(samples, "faceauth_grpc_errors_total", method=detect, code="INVALID_ARGUMENT") >= 1
    assert total(samples, "faceauth_grpc_in_flight_requests", method=detect) == 0
    assert total(samples, "faceauth_batch_size_count", model="detector") >= 1
    assert any(sample.name == "faceauth_batch_queue_depth" for sample in samples)
    assert any(sample.name == "process_resident_memory_bytes" for sample in samples)


def test_detect_matches_the_detector_called_directly(detector_server: ModelServer, detector: FaceDetector,
                                                     photos: list[Photo]) -> None:
    client = DetectorClient(target(detector_server))
    for photo in photos[:8]:
        response = client.detect(photo.data)
        expected = detector.detect(photo.image)
        assert (response.image_width, response.image_height) == (photo.image.shape[1], photo.image.shape[0])
        assert len(response.faces) == len(expected)
        for got, want in zip(response.faces, expected, strict=True):
            np.testing.assert_allclose([got.box.x_min, got.box.y_min, got.box.x_max, got.box.y_max], want.box,
                                       atol=0.05)
            np.testing.assert_allclose(landmarks.to_array(got.landmarks), want.landmarks, atol=0.05)
            assert got.score == pytest.approx(want.score, abs=1e-3)
            assert got.landmark_score == pytest.approx(want.landmark_score, abs=1e-3)
            assert got.yaw_degrees == pytest.approx(yaw_degrees(want.landmarks), abs=0.1)
            assert got.sharpness == pytest.approx(sharpness(photo.image, want.box), rel=1e-3)


def test_sharpness_drops_when_the_photo_is_blurred(detector_server: ModelServer, lfw: Path) -> None:
    """The blur measure the auth service's quality policy reads (faceauth_auth.quality, bound 15)."""
    image = decode_image((lfw / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg").read_bytes())
    client = DetectorClient(target(detector_server))

    def face_sharpness(pixels: np.ndarray) -> float:
        data = cv2.imencode(".png", pixels[:, :, ::-1])[1].tobytes()
        return float(max(client.detect(data).faces, key=lambda f: f.score).sharpness)

    assert face_sharpness(image) > 18 > 15 > face_sharpness(cv2.GaussianBlur(image, (0, 0), 2.5))


@pytest.mark.parametrize(("name", "low", "high"), [
    ("Aaron_Eckhart", -10, 10),  # looks into the camera
    ("Atsushi_Sato", 30, 70),  # nose towards the image's right edge
    ("Barbara_Boxer", -70, -30),  # nose towards the left edge
])
def test_yaw_follows_where_the_nose_points(detector_server: ModelServer, lfw: Path, name: str, low: float,
                                           high: float) -> None:
    response = DetectorClient(target(detector_server)).detect((lfw / "images" / name / f"{name}_0001.jpg").read_bytes())
    centre = np.array([response.image_width, response.image_height]) / 2
    face = min(response.faces, key=lambda f: np.linalg.norm([(f.box.x_min + f.box.x_max) / 2 - centre[0],
                                                             (f.box.y_min + f.box.y_max) / 2 - centre[1]]))
    assert low < face.yaw_degrees < high


def test_embed_and_embed_batch_match_the_embedder_called_directly(
        embedder_server: ModelServer, embedder: FaceEmbedder, photos: list[Photo]) -> None:
    client = EmbedderClient(target(embedder_server))
    for photo in photos[:8]:
        np.testing.assert_allclose(client.embed(photo.data, landmarks_of(photo)), photo.embedding, atol=1e-4)
    photo = photos[0]
    faces = [photo.landmarks, photo.landmarks + 2.0, photo.landmarks - 3.0]
    batch = client.embed_batch(photo.data, [landmarks.to_message(points) for points in faces])
    np.testing.assert_allclose(batch, embedder.embed(photo.image, faces), atol=1e-4)


def test_every_embedding_names_the_model_that_computed_it(embedder_server: ModelServer, photos: list[Photo]) -> None:
    """Templates record their model; the answer itself says which one, even mid-upgrade."""
    client = EmbedderClient(target(embedder_server))
    info = client.model_info()
    _, model = client.embed_labelled(photos[0].data, landmarks_of(photos[0]))
    assert (model.name, model.version) == (info.model.name, info.model.version) == ("mobilefacenet", 1)


def test_embedding_by_a_model_the_embedder_does_not_serve_is_refused(embedder_server: ModelServer,
                                                                   photos: list[Photo]) -> None:
    client = EmbedderClient(target(embedder_server))
    [(vector, _model)] = client.embed_with(photos[0].data, landmarks_of(photos[0]), ["mobilefacenet"])
    np.testing.assert_allclose(vector, photos[0].embedding, atol=1e-4)
    for asked in (["dlib-resnet-fast"], ["mobilefacenet", "mobilefacenet"]):
        with pytest.raises(grpc.RpcError) as refused:
            client.embed_with(photos[0].data, landmarks_of(photos[0]), asked)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(refused.value.trailing_metadata() or ())[ERROR_CODE_KEY] == "unknown_model"


def test_model_info(detector_server: ModelServer, embedder_server: ModelServer, embedder: FaceEmbedder) -> None:
    detector_info = DetectorClient(target(detector_server)).model_info()
    assert (detector_info.detector.name, detector_info.landmarker.name) == ("blazeface", "facemesh")
    assert detector_info.detector.version >= 1 and detector_info.max_faces >= 1
    info = EmbedderClient(target(embedder_server)).model_info()
    assert (info.model.name, info.model.version) == (embedder.model.name, embedder.model.version)
    assert info.embedding_size == embedder.dimensions == 192
    # The model it replaced is served too, until the operator retires it.
    assert [(served.model.name, served.embedding_size) for served in info.served] == [("mobilefacenet", 192),
                                                                                       ("dlib-resnet", 128)]
    assert info.default_threshold == pytest.approx(embedder.thresholds["fmr_1e-3"])
    assert info.strict_threshold == pytest.approx(embedder.thresholds["fmr_1e-4"])


def test_detect_scores_liveness_and_model_info_names_its_model_and_threshold(
        detector_server: ModelServer, photos: list[Photo]) -> None:
    client = DetectorClient(target(detector_server))
    info = client.model_info()
    assert (info.liveness.name, info.liveness.version) == ("liveness", 1) and 0 < info.liveness_threshold < 1
    faces = client.detect(photos[0].data).faces
    assert faces and all(face.HasField("liveness_score") and 0 <= face.liveness_score <= 1 for face in faces)


def test_32_concurrent_clients_are_batched_and_each_gets_its_own_answer(
        detector_server: ModelServer, embedder_server: ModelServer, detector: FaceDetector,
        photos: list[Photo]) -> None:
    embed_client = EmbedderClient(target(embedder_server))
    detect_client = DetectorClient(target(detector_server))
    for _ in range(2):
        embeddings = concurrently([partial(embed_client.embed, photo.data, landmarks_of(photo)) for photo in photos])
        for photo, embedding in zip(photos, embeddings, strict=True):
            np.testing.assert_allclose(embedding, photo.embedding, atol=1e-4)
    detections = concurrently([partial(detect_client.detect, photo.data) for photo in photos])
    for photo, response in zip(photos, detections, strict=True):
        boxes = [[f.box.x_min, f.box.y_min, f.box.x_max, f.box.y_max] for f in response.faces]
        np.testing.assert_allclose(boxes, [face.box for face in detector.detect(photo.image)], atol=0.05)
    for server, model in ((embedder_server, "embedder"), (detector_server, "detector")):
        samples = scrape(server.metrics_port)
        batches = total(samples, "faceauth_batch_size_count", model=model)
        single = total(samples, "faceauth_batch_size_bucket", model=model, le="1.0")
        assert single < batches, f"{model}: every batch held one item"
        assert total(samples, "faceauth_batch_size_bucket", model=model, le="8.0") == batches  # max_batch_size


@pytest.mark.parametrize(("data", "code"), [
    (b"", "empty_image"),
    (b"name,score\nalice,1\n", "unsupported_image"),
    (png_header(20000, 20000), "image_too_large"),
    (png_header(8000, 8000), "image_too_large"),  # under Pillow's own bomb limit, over faceauth's
    (None, "corrupt_image"),  # a truncated LFW JPEG, built in the test
], ids=["empty", "text", "png-20000x20000", "png-8000x8000", "truncated-jpeg"])
def test_bad_images_are_invalid_argument_and_the_servers_go_on(
        detector_server: ModelServer, embedder_server: ModelServer, photos: list[Photo],
        data: bytes | None, code: str) -> None:
    photo = photos[0]
    payload = photo.data[: len(photo.data) // 2] if data is None else data
    detect_client = DetectorClient(target(detector_server))
    embed_client = EmbedderClient(target(embedder_server))
    calls: list[Callable[[], Any]] = [lambda: detect_client.detect(payload),
                                      lambda: embed_client.embed(payload, landmarks_of(photo)),
                                      lambda: embed_client.embed_batch(payload, [landmarks_of(photo)])]
    for call in calls:
        with pytest.raises(grpc.RpcError) as failure:
            call()
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_code(failure.value) == code
        assert failure.value.details()
    assert detect_client.detect(photo.data).faces
    np.testing.assert_allclose(embed_client.embed(photo.data, landmarks_of(photo)), photo.embedding, atol=1e-4)


@pytest.mark.parametrize("points", [
    [[100, 110], [140, 110], [120, 140], [105, 160]],
    [[100, 110], [140, 110], [120, 140], [105, 160], [140, 160], [1, 1]],
    [[100, 110], [float("nan"), 110], [120, 140], [105, 160], [140, 160]],
    [[100, 110], [140, 110], [120, 140], [105, 160], [140, 1e9]],
    [[100, 110], [100, 110], [120, 140], [105, 160], [140, 160]],
], ids=["four-points", "six-points", "nan", "far-outside", "eyes-together"])
def test_unusable_landmarks_are_invalid_argument(embedder_server: ModelServer, photos: list[Photo],
                                                 points: list[list[float]]) -> None:
    client = EmbedderClient(target(embedder_server))
    with pytest.raises(grpc.RpcError) as failure:
        client.embed(photos[0].data, landmarks.to_message(np.array(points, dtype=np.float32)))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(failure.value) == "invalid_landmarks"


def test_embed_batch_says_which_face_is_unusable(embedder_server: ModelServer, photos: list[Photo]) -> None:
    good = landmarks_of(photos[0])
    bad = landmarks.to_message(photos[0].landmarks[:4])
    with pytest.raises(grpc.RpcError) as failure:
        EmbedderClient(target(embedder_server)).embed_batch(photos[0].data, [good, good, bad])
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details().startswith("face 2: a face needs exactly 5 landmarks")


@pytest.mark.parametrize("count", [0, MAX_FACES + 1])
def test_embed_batch_needs_between_one_and_max_faces(embedder_server: ModelServer, photos: list[Photo],
                                                     count: int) -> None:
    client = EmbedderClient(target(embedder_server))
    with pytest.raises(grpc.RpcError) as failure:
        client.embed_batch(photos[0].data, [landmarks_of(photos[0])] * count)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(failure.value) == "invalid_face_count"


def test_a_full_queue_gives_resource_exhausted(model_dir: Path, photos: list[Photo]) -> None:
    tight = BatchSettings(max_batch_size=1, max_queue_delay=0, max_queue=2)
    with serving(EmbedderServicer, model_dir, tight) as server:
        client = EmbedderClient(target(server))
        results = concurrently([partial(client.embed, photo.data, landmarks_of(photo)) for photo in photos])
    refused = [r for r in results if isinstance(r, grpc.RpcError)]
    assert {error.code() for error in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert any("queue is full" in error.details() for error in refused)
    for photo, result in zip(photos, results, strict=True):
        if not isinstance(result, grpc.RpcError):
            np.testing.assert_allclose(result, photo.embedding, atol=1e-4)


def test_a_spent_decode_budget_gives_resource_exhausted_then_serves_again(
        detector_server: ModelServer, embedder_server: ModelServer, photos: list[Photo]) -> None:
    photo = photos[0]
    detect_client = DetectorClient(target(detector_server))
    embed_client = EmbedderClient(target(embedder_server))
    # What is left of it, as if large photos were decoding in every other call (the photos fixture holds some).
    taken = DECODE_BUDGET.reserve(DECODE_BUDGET.capacity - DECODE_BUDGET.in_use)
    try:
        calls: list[Callable[[], Any]] = [lambda: detect_client.detect(photo.data),
                                          lambda: embed_client.embed(photo.data, landmarks_of(photo))]
        for call in calls:
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too many images are being decoded" in refused.value.details()
    finally:
        DECODE_BUDGET.release(taken)
    assert detect_client.detect(photo.data).faces
    np.testing.assert_allclose(embed_client.embed(photo.data, landmarks_of(photo)), photo.embedding, atol=1e-4)


def test_an_expired_deadline_gives_deadline_exceeded_and_skips_the_model(embedder_server: ModelServer,
                                                                         photos: list[Photo]) -> None:
    client = EmbedderClient(target(embedder_server))
    photo = photos[1]
    before = total(scrape(embedder_server.metrics_port), "faceauth_batch_expired_total", model="embedder")
    with ThreadPoolExecutor(2) as pool:
        # 48 faces queued ahead (6 batches of 8, >= 100 ms even with XNNPACK) while the next call
        # allows itself 30 ms: it is still in the queue when its deadline passes.
        busy = [pool.submit(client.embed_batch, photo.data, [landmarks_of(photo)] * 24, 30) for _ in range(2)]
        waited = time.monotonic() + 5
        while total(scrape(embedder_server.metrics_port), "faceauth_batch_queue_depth", model="embedder") < 16:
            assert time.monotonic() < waited, "the busy calls never queued"
            time.sleep(0.002)
        with pytest.raises(grpc.RpcError) as failure:
            client.embed(photo.data, landmarks_of(photo), timeout=0.03)
        assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert [len(call.result()) for call in busy] == [24, 24]
    deadline = time.monotonic() + 5
    while total(scrape(embedder_server.metrics_port), "faceauth_batch_expired_total", model="embedder") == before:
        assert time.monotonic() < deadline, "the server computed an item whose deadline had passed"
        time.sleep(0.05)
    errors = total(scrape(embedder_server.metrics_port), "faceauth_grpc_errors_total", method=EMBED,
                   code="DEADLINE_EXCEEDED")
    assert errors >= 1
    np.testing.assert_allclose(client.embed(photo.data, landmarks_of(photo)), photo.embedding, atol=1e-4)
