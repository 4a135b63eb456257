"""A service as production runs it: its own process, started by `python -m`, stopped by SIGTERM."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from faceauth.grpc import landmarks
from faceauth.grpc.client import EmbedderClient, RetryPolicy
from faceauth.grpc.launch import ServiceProcess, health_status, scrape, total
from faceauth.images import decode_image
from faceauth_embedder.servicer import MAX_FACES
from facemodels.detector import FaceDetector
from facemodels.embedder import FaceEmbedder
from facemodels.evaluation.lfw import central_face

IN_FLIGHT = 4


def test_sigterm_under_load_finishes_in_flight_calls_and_exits_0(
        tmp_path: Path, lfw: Path, model_dir: Path, detector: FaceDetector, embedder: FaceEmbedder) -> None:
    data = (lfw / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg").read_bytes()
    image = decode_image(data)
    face = central_face(detector.detect(image), image)
    assert face is not None
    expected = embedder.embed(image, [face.landmarks])[0]
    faces = [landmarks.to_message(face.landmarks)] * MAX_FACES
    # Batching off: each call runs its faces one by one and the calls queue behind each other,
    # so all of them are still in flight for a while.
    env = {"FACEAUTH_MODEL_DIR": str(model_dir), "FACEAUTH_BATCHING": "off", "FACEAUTH_GRACE_SECONDS": "20"}
    with (tmp_path / "embedder.log").open("wb") as log, ServiceProcess("faceauth_embedder", env, log) as service:
        assert health_status(service.target) == health_pb2.HealthCheckResponse.SERVING
        client = EmbedderClient(service.target, timeout=30)
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            calls = [pool.submit(client.embed_batch, data, faces) for _ in range(IN_FLIGHT)]
            give_up = time.monotonic() + 10
            while total(scrape(service.metrics_port), "faceauth_grpc_in_flight_requests") < IN_FLIGHT:
                assert time.monotonic() < give_up, "the calls never were in flight together"
                time.sleep(0.01)
            service.terminate()
            results = [call.result() for call in calls]
        assert service.wait(timeout=30) == 0
        late = EmbedderClient(service.target, timeout=2, retry=RetryPolicy(max_attempts=2, initial_backoff=0.01))
        with pytest.raises(grpc.RpcError) as refused:
            late.embed(data, faces[0])
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    for result in results:
        np.testing.assert_allclose(result, np.repeat(expected[None], MAX_FACES, axis=0), atol=1e-4)
    messages = (tmp_path / "embedder.log").read_text()
    assert "received SIGTERM; draining" in messages and '"stopped"' in messages
