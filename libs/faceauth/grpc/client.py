"""Clients for the detector and embedder: shared channels, deadlines, retries and request ids.

Targets look like ``dns:///detector.faceauth.svc.cluster.local:50051``. Behind a headless Service
that name lists every pod and round_robin spreads calls over all of them (through a ClusterIP
Service each long-lived HTTP/2 connection would stick to one pod). gRPC itself retries calls that
end with UNAVAILABLE (a pod starting, draining or gone), with exponential backoff and within the
call's deadline, following the service config below; every other status is an answer, not retried.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import numpy as np

from faceauth import logs
from faceauth.grpc import MAX_MESSAGE_BYTES
from faceauth.grpc.interceptor import REQUEST_ID_KEY
from faceauth.grpc.tls import ClientTls
from faceauth.v1 import common_pb2, detector_pb2, detector_pb2_grpc, embedder_pb2, embedder_pb2_grpc

DEFAULT_TIMEOUT = 2.0  # seconds; a queued detector call takes a few hundred ms at worst
SERVICES = (detector_pb2.DESCRIPTOR.services_by_name["DetectorService"].full_name,
            embedder_pb2.DESCRIPTOR.services_by_name["EmbedderService"].full_name)


def dns_target(host: str, port: int) -> str:
    """A target whose every DNS address gets calls (a headless Service's name gives one per pod)."""
    return f"dns:///{host}:{port}"


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC's retry policy for UNAVAILABLE; attempt n waits ~initial * multiplier**(n-1), capped, jittered."""

    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 1.0
    multiplier: float = 2.0

    def service_config(self) -> str:
        return json.dumps({"methodConfig": [{
            "name": [{"service": service} for service in SERVICES],
            "retryPolicy": {
                "maxAttempts": self.max_attempts,
                "initialBackoff": f"{self.initial_backoff}s",
                "maxBackoff": f"{self.max_backoff}s",
                "backoffMultiplier": self.multiplier,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }]})


_channels: dict[tuple[str, RetryPolicy, ClientTls | None], grpc.Channel] = {}
_channels_lock = threading.Lock()


def shared_channel(target: str, retry: RetryPolicy = RetryPolicy(), tls: ClientTls | None = None) -> grpc.Channel:
    """The process's one channel to ``target``: channels are thread-safe and own the connections,
    name resolution and balancing state, so making one per call would throw all that away.

    With ``tls`` the channel speaks TLS, verifies the server's certificate against ``tls.ca_file`` and the
    target's host name, and presents auth's own certificate when one is given (faceauth.grpc.tls)."""
    key = (target, retry, tls)
    with _channels_lock:
        if key not in _channels:
            options = [
                ("grpc.lb_policy_name", "round_robin"),
                ("grpc.enable_retries", 1),
                ("grpc.service_config", retry.service_config()),
                ("grpc.service_config_disable_resolution", 1),  # ours, not one from DNS TXT records
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # Notice dead connections (a node gone) instead of waiting on them until the deadline;
                # the server allows pings every 10 s (faceauth.grpc.server).
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.max_pings_without_data", 0),
                # gRPC's reconnect backoff grows to 120 s by default: after an outage the auth service
                # would keep answering 503 that long. Retry the connection at least every 5 s.
                ("grpc.max_reconnect_backoff_ms", 5_000),
            ]
            _channels[key] = (grpc.insecure_channel(target, options=options) if tls is None
                              else grpc.secure_channel(target, tls.credentials(), options=options))
        return _channels[key]


def outgoing_request_id() -> str:
    """The request id being handled in this context (see faceauth.logs), or a fresh one."""
    current = logs.request_id.get()
    return current if current != "-" else uuid.uuid4().hex


class _Client:
    def __init__(self, target: str, timeout: float = DEFAULT_TIMEOUT, retry: RetryPolicy = RetryPolicy(),
                 tls: ClientTls | None = None) -> None:
        self.channel = shared_channel(target, retry, tls)
        self.timeout = timeout

    def _options(self, timeout: float | None) -> dict[str, object]:
        return {"timeout": self.timeout if timeout is None else timeout,
                "metadata": ((REQUEST_ID_KEY, outgoing_request_id()),)}


class DetectorClient(_Client):
    """Typed calls to DetectorService; raises grpc.RpcError with the server's status."""

    def __init__(self, target: str, timeout: float = DEFAULT_TIMEOUT, retry: RetryPolicy = RetryPolicy(),
                 tls: ClientTls | None = None) -> None:
        super().__init__(target, timeout, retry, tls)
        self._stub = detector_pb2_grpc.DetectorServiceStub(self.channel)

    def detect(self, image: bytes, timeout: float | None = None) -> detector_pb2.DetectResponse:
        return self._stub.Detect(detector_pb2.DetectRequest(image=image), **self._options(timeout))

    def model_info(self, timeout: float | None = None) -> detector_pb2.DetectorServiceGetModelInfoResponse:
        return self._stub.GetModelInfo(detector_pb2.DetectorServiceGetModelInfoRequest(), **self._options(timeout))


class EmbedderClient(_Client):
    """Typed calls to EmbedderService; raises grpc.RpcError with the server's status."""

    def __init__(self, target: str, timeout: float = DEFAULT_TIMEOUT, retry: RetryPolicy = RetryPolicy(),
                 tls: ClientTls | None = None) -> None:
        super().__init__(target, timeout, retry, tls)
        self._stub = embedder_pb2_grpc.EmbedderServiceStub(self.channel)

    def embed(self, image: bytes, landmarks: common_pb2.Landmarks, timeout: float | None = None) -> np.ndarray:
        """The (D,) embedding of the face with ``landmarks`` (as DetectorClient.detect returns them)."""
        return self.embed_labelled(image, landmarks, timeout)[0]

    def embed_labelled(self, image: bytes, landmarks: common_pb2.Landmarks,
                       timeout: float | None = None) -> tuple[np.ndarray, common_pb2.ModelVersion]:
        """The embedding and the model that computed it (what a stored template must record)."""
        request = embedder_pb2.EmbedRequest(image=image, landmarks=landmarks)
        response = self._stub.Embed(request, **self._options(timeout))
        return np.asarray(response.embedding.values, dtype=np.float32), response.model

    def embed_with(self, image: bytes, landmarks: common_pb2.Landmarks, models: Sequence[str],
                   timeout: float | None = None) -> list[tuple[np.ndarray, common_pb2.ModelVersion]]:
        """The face's embedding by each of the named served models, in that order, from one upload."""
        request = embedder_pb2.EmbedRequest(image=image, landmarks=landmarks, models=models)
        response = self._stub.Embed(request, **self._options(timeout))
        return [(np.asarray(item.embedding.values, dtype=np.float32), item.model) for item in response.embeddings]

    def embed_batch(self, image: bytes, faces: Sequence[common_pb2.Landmarks],
                    timeout: float | None = None) -> np.ndarray:
        """(N, D) embeddings of several faces of one photo, in the order given."""
        request = embedder_pb2.EmbedBatchRequest(image=image, faces=faces)
        response = self._stub.EmbedBatch(request, **self._options(timeout))
        return np.asarray([embedding.values for embedding in response.embeddings], dtype=np.float32)

    def model_info(self, timeout: float | None = None) -> embedder_pb2.EmbedderServiceGetModelInfoResponse:
        return self._stub.GetModelInfo(embedder_pb2.EmbedderServiceGetModelInfoRequest(), **self._options(timeout))
