"""``python -m faceauth_embedder``: serve EmbedderService until SIGTERM; configured by FACEAUTH_* variables."""

from __future__ import annotations

import sys

from faceauth import logs
from faceauth.grpc.devices import configure_devices
from faceauth.grpc.metrics import Metrics
from faceauth.grpc.server import serve
from faceauth.grpc.settings import ServingSettings
from faceauth_embedder.servicer import EmbedderServicer


def main() -> int:
    settings = ServingSettings.from_env(default_port=50052, default_metrics_port=9102)
    logs.configure("embedder", settings.log_level)
    configure_devices()
    metrics = Metrics()
    return serve(EmbedderServicer(settings, metrics), settings, metrics)


if __name__ == "__main__":
    sys.exit(main())
