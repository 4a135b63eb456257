"""A model server's configuration, read from its environment (12-factor; set in the Helm chart)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faceauth.config import env_bool, env_float, env_int, env_str
from faceauth.grpc.batcher import BatchSettings
from faceauth.grpc.tls import ServerTls
from facemodels.saved import DEFAULT_RUNTIME, Runtime


@dataclass(frozen=True)
class ServingSettings:
    """Everything a detector or embedder process needs besides its code."""

    model_dir: Path
    port: int
    metrics_port: int
    batching: BatchSettings
    runtime: Runtime = DEFAULT_RUNTIME
    bind_address: str = "[::]"
    metrics_address: str = "0.0.0.0"  # Prometheus scrapes from other pods
    grace_seconds: float = 25.0  # Kubernetes kills the pod 30 s after SIGTERM by default
    log_level: str = "INFO"
    # gRPC server reflection lists every service and message the server has (grpcurl's describe):
    # handy when debugging, a map of the API for anyone who can reach the port otherwise; off unless asked.
    reflection: bool = False
    # TLS on the gRPC port (mutual with a client CA; faceauth.grpc.tls); None: plaintext.
    tls: ServerTls | None = None
    # A second, plaintext port answering grpc.health.v1 alone, for kubelet's gRPC probes, which cannot speak
    # TLS; None: no such port (probes then use the gRPC port), 0: an ephemeral one (tests).
    health_port: int | None = None

    @property
    def workers(self) -> int:
        """Threads answering calls: one per call queued or in a batch, plus some decoding the next
        photos and answering health checks, so that the batcher's queue is what sheds load."""
        return self.batching.max_queue + self.batching.max_batch_size + 16

    @classmethod
    def from_env(cls, *, default_port: int, default_metrics_port: int) -> ServingSettings:
        max_queue = env_int("FACEAUTH_MAX_QUEUE", 128)
        if env_bool("FACEAUTH_BATCHING", True):
            batching = BatchSettings(max_batch_size=env_int("FACEAUTH_MAX_BATCH_SIZE", 16),
                                     max_queue_delay=env_float("FACEAUTH_MAX_QUEUE_DELAY_MS", 0.0) / 1000,
                                     max_queue=max_queue)
        else:  # one request per model call, still through the bounded queue
            batching = BatchSettings(max_batch_size=1, max_queue_delay=0.0, max_queue=max_queue)
        return cls(model_dir=Path(env_str("FACEAUTH_MODEL_DIR", "/models")),
                   port=env_int("FACEAUTH_GRPC_PORT", default_port),
                   metrics_port=env_int("FACEAUTH_METRICS_PORT", default_metrics_port),
                   batching=batching,
                   # TFLite through XNNPACK on CPUs, the SavedModel on GPUs (facemodels/saved.py)
                   runtime=Runtime(env_str("FACEAUTH_MODEL_RUNTIME", "auto"), env_int("FACEAUTH_INTRA_OP_THREADS", 0)),
                   bind_address=env_str("FACEAUTH_BIND_ADDRESS", "[::]"),
                   grace_seconds=env_float("FACEAUTH_GRACE_SECONDS", 25.0),
                   log_level=env_str("FACEAUTH_LOG_LEVEL", "INFO"),
                   reflection=env_bool("FACEAUTH_GRPC_REFLECTION", False),
                   tls=ServerTls.from_env(),
                   health_port=_optional_port("FACEAUTH_GRPC_HEALTH_PORT"))


def _optional_port(name: str) -> int | None:
    raw = env_str(name, "").strip()
    return env_int(name, 0) if raw else None
