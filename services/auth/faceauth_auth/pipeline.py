"""The face pipeline as the auth service sees it: detect, judge quality, embed — over gRPC.

Photos are sent as they were uploaded: the detector and embedder decode them safely, and the
detector also measures each face's sharpness, so the auth service never decodes a photo.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from faceauth.grpc import landmarks
from faceauth.grpc.client import SERVICES, DetectorClient, EmbedderClient
from faceauth.images import DEFAULT_LIMITS
from faceauth_auth import downstream, modelbounds
from faceauth_auth.errors import ApiError
from faceauth_auth.faces import DetectedFace, Detection, EmbeddingModel, ModelInfo, Probe, ServedModels
from faceauth_auth.quality import QualityPolicy, single_usable

HEALTH_TIMEOUT = 1.0  # seconds; readiness probes must answer quickly


class FacePipeline:
    """Thread-safe; one per process, sharing the gRPC channels."""

    def __init__(self, detector: DetectorClient, embedder: EmbedderClient, policy: QualityPolicy,
                 model_info_ttl: float, bounds: modelbounds.Bounds) -> None:
        self.detector = detector
        self._bounds = bounds
        self.embedder = embedder
        self.policy = policy
        self._ttl = model_info_ttl
        self._info: tuple[float, ServedModels] | None = None
        self._lock = threading.Lock()

    def served_models(self) -> ServedModels:
        """The models and their thresholds, re-read every ``model_info_ttl`` seconds (models get upgraded)."""
        with self._lock:
            if self._info is None or time.monotonic() - self._info[0] > self._ttl:
                with downstream.call("embedder"):
                    reply = self.embedder.model_info()
                with downstream.call("detector"):
                    detector = self.detector.model_info()
                served = [modelbounds.bounded(ModelInfo(
                    EmbeddingModel(item.model.name, int(item.model.version), int(item.embedding_size)),
                    float(item.default_threshold), float(item.strict_threshold),
                    tuple((point.false_match_rate, point.distance) for point in getattr(item, "thresholds", ()))),
                    self._bounds) for item in reply.served or [reply]]
                liveness = float(detector.liveness_threshold) if detector.HasField("liveness") else None
                self._info = (time.monotonic(), ServedModels(served[0], tuple(served[1:]), liveness))
            return self._info[1]

    def _forget_models(self) -> None:
        """Read the models again at the next call (a rolling upgrade changed them)."""
        with self._lock:
            self._info = None

    def readiness(self) -> dict[str, bool]:
        """Whether each gRPC service reports SERVING to the standard health check (fast, no retries)."""
        checks = {}
        channels = {"detector": self.detector.channel, "embedder": self.embedder.channel}
        for (name, channel), service in zip(channels.items(), SERVICES, strict=True):
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                  timeout=HEALTH_TIMEOUT)
                checks[name] = reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                checks[name] = False
        return checks

    def detect(self, image: bytes) -> Detection:
        """Every face in the photo with its quality verdict."""
        if len(image) > DEFAULT_LIMITS.max_bytes:
            raise ApiError(413, "payload_too_large", f"the image is larger than {DEFAULT_LIMITS.max_bytes} bytes")
        with downstream.call("detector"):
            reply = self.detector.detect(image)
        faces = []
        for face in reply.faces:
            box = (face.box.x_min, face.box.y_min, face.box.x_max, face.box.y_max)
            sharpness = face.sharpness if face.HasField("sharpness") else None
            faces.append(DetectedFace(box, face.score, landmarks.to_array(face.landmarks), face.landmark_score,
                                      face.yaw_degrees, self.policy.assess(box, sharpness),
                                      face.liveness_score if face.HasField("liveness_score") else None))
        return Detection(reply.image_width, reply.image_height, faces)

    def probe(self, image: bytes, legacy: Sequence[ModelInfo] = ()) -> Probe:
        """The embedding of the photo's one usable face by the primary model, and by the ``legacy``
        models asked for (served ones); a 422 when there is not exactly one usable face."""
        served = self.served_models()
        face = single_usable(self.detect(image).faces)
        wanted = [served.primary, *legacy]
        try:
            with downstream.call("embedder"):
                results = self.embedder.embed_with(image, landmarks.to_message(face.landmarks),
                                                   [info.model.name for info in wanted])
        except ApiError as error:
            if error.code != "unknown_model":
                raise
            results = []  # a legacy model was retired since we last asked
        if len(results) != len(wanted) or any(
                (model.name, model.version) != (info.model.name, info.model.version)
                or embedding.shape != (info.model.dimensions,)
                for info, (embedding, model) in zip(wanted, results, strict=False)):
            self._forget_models()  # a rolling upgrade: read the models and their thresholds again
            raise ApiError(503, "service_unavailable", "the embedder's models changed; try again shortly",
                           {"Retry-After": "1"})
        embeddings = [np.asarray(embedding, dtype=np.float32) for embedding, _ in results]
        return Probe(embeddings[0], served.primary, face.liveness_score, served.liveness_threshold,
                     tuple(zip(legacy, embeddings[1:], strict=True)), face.yaw_degrees)
