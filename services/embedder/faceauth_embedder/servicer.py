"""EmbedderService: decode and align in the caller's thread, embed the chips in batches.

The service runs a primary model (every new enrolment) and, during a migration window, older
models too, so that users enrolled with them can still log in until their templates have been
renewed under the primary model (docs/models.md, "Upgrading the embedder").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
from facemodels.embedder import DEFAULT_MODEL, FaceEmbedder, fmr_of

SERVICE_NAME: str = embedder_pb2.DESCRIPTOR.services_by_name["EmbedderService"].full_name
# Enough for a group photo; as many as the detector returns per photo.
MAX_FACES = 32
# The primary model before mobilefacenet: served until the operator retires it (FACEAUTH_EMBEDDER_LEGACY_MODELS=""),
# so that an upgrade locks nobody out.
DEFAULT_LEGACY_MODELS = "dlib-resnet"


def served_model_names() -> list[str]:
    """FACEAUTH_EMBEDDER_MODEL first, then FACEAUTH_EMBEDDER_LEGACY_MODELS (comma-separated), once each."""
    names = [env_str("FACEAUTH_EMBEDDER_MODEL", DEFAULT_MODEL).strip()]
    legacy = env_str("FACEAUTH_EMBEDDER_LEGACY_MODELS", DEFAULT_LEGACY_MODELS)
    names += [name.strip() for name in legacy.split(",") if name.strip()]
    return list(dict.fromkeys(names))


def warm_up(embedder: FaceEmbedder, max_batch_size: int) -> None:
    """Run the network at every batch size the batcher can form: each size compiles or picks kernels once."""
    for size in range(1, max_batch_size + 1):
        embedder.embed_chips(np.zeros((size, embedder.chip_size, embedder.chip_size, 3), np.uint8))


def embedding_message(vector: np.ndarray) -> embedder_pb2.Embedding:
    return embedder_pb2.Embedding(values=vector.tolist())


@dataclass(frozen=True)
class ServedModel:
    """One loaded embedding model and the batcher that feeds it."""

    embedder: FaceEmbedder
    batcher: DynamicBatcher[np.ndarray, np.ndarray]

    @property
    def version(self) -> common_pb2.ModelVersion:
        return common_pb2.ModelVersion(name=self.embedder.model.name, version=self.embedder.model.version)

    def info(self) -> embedder_pb2.EmbeddingModelInfo:
        thresholds = self.embedder.thresholds
        calibrated = sorted(((fmr_of(name), distance) for name, distance in thresholds.items()), reverse=True)
        return embedder_pb2.EmbeddingModelInfo(
            model=self.version, embedding_size=self.embedder.dimensions, default_threshold=thresholds["fmr_1e-3"],
            strict_threshold=thresholds["fmr_1e-4"],
            thresholds=[embedder_pb2.CalibratedThreshold(false_match_rate=fmr, distance=distance)
                        for fmr, distance in calibrated])


class EmbedderServicer(embedder_pb2_grpc.EmbedderServiceServicer):
    """Implements faceauth.v1.EmbedderService and server.ModelServicer."""

    service_name = SERVICE_NAME

    def __init__(self, settings: ServingSettings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._models: dict[str, ServedModel] | None = None  # the primary model first

    def register(self, server: grpc.Server) -> None:
        embedder_pb2_grpc.add_EmbedderServiceServicer_to_server(self, server)

    def load(self) -> None:
        # Each model has its own calibrated thresholds (docs/models.md); dlib-resnet-fast trades the
        # mirror image for throughput.
        models = {}
        for name in served_model_names():
            embedder = FaceEmbedder.load(self._settings.model_dir, name, self._settings.runtime)
            warm_up(embedder, self._settings.batching.max_batch_size)
            batcher = DynamicBatcher(embedder.embed_chips, self._settings.batching,
                                     self._metrics.batch_observer("embedder"), name=f"embedder-batcher-{name}")
            models[name] = ServedModel(embedder, batcher)
        self._models = models

    def close(self) -> None:
        for model in (self._models or {}).values():
            model.batcher.close()

    def Embed(self, request: embedder_pb2.EmbedRequest,  # noqa: N802 - name fixed by the proto
              context: grpc.ServicerContext) -> embedder_pb2.EmbedResponse:
        with status_on_error(context):
            models = self._requested(request.models)
            image = decode_image(request.image)
            results = [(model, self._embed(model, image, [request.landmarks], context)[0]) for model in models]
            first, vector = results[0]
            named = [embedder_pb2.ModelEmbedding(model=model.version, embedding=embedding_message(embedding))
                     for model, embedding in results] if request.models else []
            return embedder_pb2.EmbedResponse(embedding=embedding_message(vector), model=first.version,
                                              embeddings=named)

    def EmbedBatch(self, request: embedder_pb2.EmbedBatchRequest,  # noqa: N802
                   context: grpc.ServicerContext) -> embedder_pb2.EmbedBatchResponse:
        with status_on_error(context):
            if not 1 <= len(request.faces) <= MAX_FACES:
                raise InvalidInput("invalid_face_count",
                                   f"send between 1 and {MAX_FACES} faces, not {len(request.faces)}")
            [primary] = self._requested([])
            vectors = self._embed(primary, decode_image(request.image), request.faces, context)
            return embedder_pb2.EmbedBatchResponse(embeddings=[embedding_message(vector) for vector in vectors],
                                                   model=primary.version)

    def GetModelInfo(self, request: embedder_pb2.EmbedderServiceGetModelInfoRequest,  # noqa: N802
                     context: grpc.ServicerContext) -> embedder_pb2.EmbedderServiceGetModelInfoResponse:
        with status_on_error(context):
            served = [model.info() for model in ready(self._models).values()]
            primary = served[0]
            return embedder_pb2.EmbedderServiceGetModelInfoResponse(
                model=primary.model, embedding_size=primary.embedding_size,
                default_threshold=primary.default_threshold, strict_threshold=primary.strict_threshold,
                served=served)

    def _requested(self, names: Sequence[str]) -> list[ServedModel]:
        """The served models named in a request (the primary one when none is named)."""
        models = ready(self._models)
        if not names:
            return [next(iter(models.values()))]
        unknown = [name for name in names if name not in models]
        if unknown or len(set(names)) != len(names):
            raise InvalidInput("unknown_model", f"this embedder serves {', '.join(models)}; "
                                                f"asked for {', '.join(names)}")
        return [models[name] for name in names]

    @staticmethod
    def _embed(model: ServedModel, image: np.ndarray, faces: Sequence[common_pb2.Landmarks],
               context: grpc.ServicerContext) -> list[np.ndarray]:
        """Check and align every face of a decoded photo for ``model``, then queue all chips together."""
        chips = []
        for index, face in enumerate(faces):
            try:
                points = landmark_points(face, image)
            except InvalidInput as exc:  # say which face when there are several
                raise InvalidInput(exc.code, f"face {index}: {exc.message}" if len(faces) > 1 else exc.message) from exc
            chips.append(model.embedder.align(image, points))
        return model.batcher.submit(chips, time_left(context))
