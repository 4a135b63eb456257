"""Run the auth service under gunicorn, as production does, as a child process (benchmarks, fault tests).

The counterpart of faceauth.grpc.launch for the HTTP service: real workers, real threads, real
signals, so what is measured or broken is what runs in a pod.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from typing import IO

import psutil

from faceauth.grpc.launch import ChildProcess, free_port


class AuthProcess(ChildProcess):
    """``gunicorn -c python:faceauth_auth.gunicorn_conf`` on free 127.0.0.1 ports (the API's and the metrics');
    ready when /readyz answers 200.

    Unless ``env`` names a shared rate limit storage, each worker counts its own limits in memory, which a
    benchmark or a test of something else does not mind (FACEAUTH_RATE_LIMIT_ALLOW_PER_WORKER).
    """

    def __init__(self, env: Mapping[str, str], output: IO[bytes] | None = None) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        super().__init__("gunicorn", ["gunicorn", "-c", "python:faceauth_auth.gunicorn_conf"],
                         {"FACEAUTH_BIND_ADDRESS": "127.0.0.1", "FACEAUTH_PORT": str(self.port),
                          "FACEAUTH_METRICS_PORT": str(self.metrics_port),
                          "FACEAUTH_RATE_LIMIT_ALLOW_PER_WORKER": "true", **env}, output)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def workers(self) -> list[psutil.Process]:
        """gunicorn's worker processes (the master's children)."""
        return psutil.Process(self.process.pid).children() if self.process is not None else []
