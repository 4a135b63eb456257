"""DetectorService: decode each photo in the caller's thread, detect in batches, answer in pixels."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np

from faceauth.config import env_str
from faceauth.grpc import landmarks
from faceauth.grpc.batcher import DynamicBatcher
from faceauth.grpc.metrics import Metrics
from faceauth.grpc.settings import ServingSettings
from faceauth.grpc.status import ready, status_on_error, time_left
from faceauth.images import decode_image
from faceauth.v1 import common_pb2, detector_pb2, detector_pb2_grpc
from faceauth_detector.pose import yaw_degrees
from faceauth_detector.sharpness import sharpness
from facemodels.detector import FaceDetector
from facemodels.faces import Face
from facemodels.liveness import DEFAULT_MODEL, LivenessScorer

SERVICE_NAME: str = detector_pb2.DESCRIPTOR.services_by_name["DetectorService"].full_name


def face_message(face: Face, image: np.ndarray) -> detector_pb2.Face:
    """The message for one face of ``image``; pose and sharpness are measured here, in the caller's thread."""
    x_min, y_min, x_max, y_max = face.box
    return detector_pb2.Face(box=detector_pb2.Box(x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max),
                             score=face.score, landmarks=landmarks.to_message(face.landmarks),
                             landmark_score=face.landmark_score, yaw_degrees=yaw_degrees(face.landmarks),
                             liveness_score=face.liveness_score, sharpness=sharpness(image, face.box))


def _liveness_info(scorer: LivenessScorer | None) -> dict[str, Any]:
    """GetModelInfo's liveness fields; left unset when no liveness model runs."""
    if scorer is None:
        return {}
    return {"liveness": common_pb2.ModelVersion(name=scorer.model.name, version=scorer.model.version),
            "liveness_threshold": scorer.threshold}


class DetectorServicer(detector_pb2_grpc.DetectorServiceServicer):
    """Implements faceauth.v1.DetectorService and server.ModelServicer."""

    service_name = SERVICE_NAME

    def __init__(self, settings: ServingSettings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._detector: FaceDetector | None = None
        self._batcher: DynamicBatcher[np.ndarray, list[Face]] | None = None

    def register(self, server: grpc.Server) -> None:
        detector_pb2_grpc.add_DetectorServiceServicer_to_server(self, server)

    def load(self) -> None:
        detector = FaceDetector.load(self._settings.model_dir,
                                     liveness_model=env_str("FACEAUTH_LIVENESS_MODEL", DEFAULT_MODEL),
                                     runtime=self._settings.runtime)
        detector.warm_up(self._settings.batching.max_batch_size)
        self._batcher = DynamicBatcher(detector.detect_batch, self._settings.batching,
                                       self._metrics.batch_observer("detector"), name="detector-batcher")
        self._detector = detector

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()

    def Detect(self, request: detector_pb2.DetectRequest,  # noqa: N802 - name fixed by the proto
               context: grpc.ServicerContext) -> detector_pb2.DetectResponse:
        with status_on_error(context):
            batcher = ready(self._batcher)
            image = decode_image(request.image)
            faces = batcher.submit([image], time_left(context))[0]
            return detector_pb2.DetectResponse(faces=[face_message(face, image) for face in faces],
                                               image_width=image.shape[1], image_height=image.shape[0])

    def GetModelInfo(self, request: detector_pb2.DetectorServiceGetModelInfoRequest,  # noqa: N802
                     context: grpc.ServicerContext) -> detector_pb2.DetectorServiceGetModelInfoResponse:
        with status_on_error(context):
            detector = ready(self._detector)
            return detector_pb2.DetectorServiceGetModelInfoResponse(
                detector=common_pb2.ModelVersion(name=detector.model.name, version=detector.model.version),
                landmarker=common_pb2.ModelVersion(name=detector.mesh.name, version=detector.mesh.version),
                score_threshold=detector.settings.score_threshold,
                landmark_threshold=detector.settings.landmark_threshold,
                max_faces=detector.settings.max_faces, **_liveness_info(detector.liveness))
