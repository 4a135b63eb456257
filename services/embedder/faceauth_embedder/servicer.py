"""EmbedderService: decode and align in the caller's thread, embed the chips in batches."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import numpy as np

from faceauth.config import env_str
from faceauth.errors import InvalidInput
from faceauth.grpc.batcher import DynamicBatcher
from faceauth.grpc.metrics import Metrics
from faceauth.grpc.settings import ServingSettings
from faceauth.grpc.status import ready, status_on_error, time_left
from faceauth.images import decode_image
from faceauth.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc
from faceauth_embedder.validation import landmark_points
from facemodels.embedder import FaceEmbedder

SERVICE_NAME: str = embedder_pb2.DESCRIPTOR.services_by_name["EmbedderService"].full_name
# Enough for a group photo; as many as the detector returns per photo.
MAX_FACES = 32


def warm_up(embedder: FaceEmbedder, max_batch_size: int) -> None:
    """Run the network at every batch size the batcher can form: each size compiles or picks kernels once."""
    for size in range(1, max_batch_size + 1):
        embedder.embed_chips(np.zeros((size, embedder.chip_size, embedder.chip_size, 3), np.uint8))


def embedding_message(vector: np.ndarray) -> embedder_pb2.Embedding:
    return embedder_pb2.Embedding(values=vector.tolist())


class EmbedderServicer(embedder_pb2_grpc.EmbedderServiceServicer):
    """Implements faceauth.v1.EmbedderService and server.ModelServicer."""

    service_name = SERVICE_NAME

    def __init__(self, settings: ServingSettings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._embedder: FaceEmbedder | None = None
        self._batcher: DynamicBatcher[np.ndarray, np.ndarray] | None = None

    def register(self, server: grpc.Server) -> None:
        embedder_pb2_grpc.add_EmbedderServiceServicer_to_server(self, server)

    def load(self) -> None:
        # dlib-resnet embeds each face and its mirror image (more accurate); dlib-resnet-fast only the
        # face (about twice the throughput). Each has its own calibrated thresholds (docs/models.md).
        embedder = FaceEmbedder.load(self._settings.model_dir, env_str("FACEAUTH_EMBEDDER_MODEL", "dlib-resnet"),
                                     self._settings.runtime)
        warm_up(embedder, self._settings.batching.max_batch_size)
        self._batcher = DynamicBatcher(embedder.embed_chips, self._settings.batching,
                                       self._metrics.batch_observer("embedder"), name="embedder-batcher")
        self._embedder = embedder

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()

    def Embed(self, request: embedder_pb2.EmbedRequest,  # noqa: N802 - name fixed by the proto
              context: grpc.ServicerContext) -> embedder_pb2.EmbedResponse:
        with status_on_error(context):
            [vector] = self._embed(request.image, [request.landmarks], context)
            return embedder_pb2.EmbedResponse(embedding=embedding_message(vector), model=self._model_version())

    def EmbedBatch(self, request: embedder_pb2.EmbedBatchRequest,  # noqa: N802
                   context: grpc.ServicerContext) -> embedder_pb2.EmbedBatchResponse:
        with status_on_error(context):
            if not 1 <= len(request.faces) <= MAX_FACES:
                raise InvalidInput("invalid_face_count",
                                   f"send between 1 and {MAX_FACES} faces, not {len(request.faces)}")
            vectors = self._embed(request.image, request.faces, context)
            return embedder_pb2.EmbedBatchResponse(embeddings=[embedding_message(vector) for vector in vectors],
                                                   model=self._model_version())

    def GetModelInfo(self, request: embedder_pb2.EmbedderServiceGetModelInfoRequest,  # noqa: N802
                     context: grpc.ServicerContext) -> embedder_pb2.EmbedderServiceGetModelInfoResponse:
        with status_on_error(context):
            embedder = ready(self._embedder)
            return embedder_pb2.EmbedderServiceGetModelInfoResponse(
                model=self._model_version(),
                embedding_size=embedder.dimensions, default_threshold=embedder.thresholds["fmr_1e-3"],
                strict_threshold=embedder.thresholds["fmr_1e-4"])

    def _model_version(self) -> common_pb2.ModelVersion:
        model = ready(self._embedder).model
        return common_pb2.ModelVersion(name=model.name, version=model.version)

    def _embed(self, data: bytes, faces: Sequence[common_pb2.Landmarks],
               context: grpc.ServicerContext) -> list[np.ndarray]:
        """Decode once, check and align every face, then queue all chips together."""
        embedder, batcher = ready(self._embedder), ready(self._batcher)
        image = decode_image(data)
        chips = []
        for index, face in enumerate(faces):
            try:
                points = landmark_points(face, image)
            except InvalidInput as exc:  # say which face when there are several
                raise InvalidInput(exc.code, f"face {index}: {exc.message}" if len(faces) > 1 else exc.message) from exc
            chips.append(embedder.align(image, points))
        return batcher.submit(chips, time_left(context))
