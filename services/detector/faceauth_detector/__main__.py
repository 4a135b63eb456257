"""``python -m faceauth_detector``: serve DetectorService until SIGTERM; configured by FACEAUTH_* variables."""

from __future__ import annotations

import sys

from faceauth import logs
from faceauth.grpc.devices import configure_devices
from faceauth.grpc.metrics import Metrics
from faceauth.grpc.server import serve
from faceauth.grpc.settings import ServingSettings
from faceauth_detector.servicer import DetectorServicer


def main() -> int:
    settings = ServingSettings.from_env(default_port=50051, default_metrics_port=9101)
    logs.configure("detector", settings.log_level)
    configure_devices()
    metrics = Metrics()
    return serve(DetectorServicer(settings, metrics), settings, metrics)


if __name__ == "__main__":
    sys.exit(main())
