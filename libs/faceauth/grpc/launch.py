"""Run a faceauth service as a child process and wait until it is ready (tests, benchmarks).

A separate process is what production runs: its own interpreter lock, real signals, real exit code.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import IO, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A TCP port nobody listens on right now (the server refuses to share it if that changes).

    Never the same port twice in one process: the kernel may offer a port again once its probe
    socket is closed, and two services started together would then collide on it.
    """
    with _handed_out_lock:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def health_status(target: str, service: str = "", timeout: float = 1.0) -> int:
    """The health service's answer for ``service``; UNKNOWN while the server does not answer."""
    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                 timeout=timeout)
        except grpc.RpcError:
            return int(health_pb2.HealthCheckResponse.UNKNOWN)
    return int(response.status)


def scrape(metrics_port: int) -> list[Sample]:
    """Every sample a server exports on 127.0.0.1:``metrics_port``/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


class ChildProcess:
    """``python -m <args>`` with ``env`` on top of our environment; start() returns once it is ready.

    Subclasses say what ready means (a gRPC health check, an HTTP probe).
    """

    def __init__(self, name: str, args: Sequence[str], env: Mapping[str, str], output: IO[bytes] | None) -> None:
        self.name = name
        self._args = list(args)
        self._env = {**os.environ, **env}
        self._output = output
        self.process: subprocess.Popen[bytes] | None = None

    def _ready(self) -> bool:
        raise NotImplementedError

    def _last_output(self) -> str:
        """The end of the process's output when it goes to a file, so a failed start says why."""
        name = getattr(self._output, "name", None)
        if not isinstance(name, str) or not os.path.isfile(name):
            return ""
        with open(name, errors="replace") as output:
            return ":\n" + output.read()[-2000:]

    def start(self, timeout: float = 120.0) -> Self:
        """Start the process and return once it is ready; RuntimeError if it dies or times out."""
        self.process = subprocess.Popen([sys.executable, "-m", *self._args], env=self._env,
                                        stdout=self._output or subprocess.DEVNULL, stderr=subprocess.STDOUT)
        give_up = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} before it was ready"
                                   f"{self._last_output()}")
            if time.monotonic() > give_up:
                self.stop()
                raise RuntimeError(f"{self.name} was not ready after {timeout:g} s")
            time.sleep(0.1)
        return self

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the process has not started")
        return self.process.pid

    def terminate(self) -> None:
        """Send SIGTERM, as Kubernetes does; wait() tells how it ended."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        if self.process is None:
            raise RuntimeError("the process has not started")
        return self.process.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds.

        Returns the exit status (0 for a clean shutdown), None when the process was never started.
        """
        self.terminate()
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


class ServiceProcess(ChildProcess):
    """A gRPC service (``python -m <module>``) on 127.0.0.1 with free gRPC and metrics ports; ready when SERVING.

    With TLS in ``env`` (FACEAUTH_GRPC_TLS_CERT_FILE) it also gets a plaintext health port, which readiness
    is checked on, as kubelet's probes are in the chart.
    """

    def __init__(self, module: str, env: Mapping[str, str] | None = None, output: IO[bytes] | None = None) -> None:
        self.module = module
        self.port = free_port()
        self.metrics_port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        ports = {"FACEAUTH_BIND_ADDRESS": "127.0.0.1", "FACEAUTH_GRPC_PORT": str(self.port),
                 "FACEAUTH_METRICS_PORT": str(self.metrics_port)}
        self.health_port: int | None = None
        if (env or {}).get("FACEAUTH_GRPC_TLS_CERT_FILE"):
            self.health_port = free_port()
            ports["FACEAUTH_GRPC_HEALTH_PORT"] = str(self.health_port)
        super().__init__(module, [module], {**ports, **(env or {})}, output)

    @property
    def health_target(self) -> str:
        """Where plaintext health checks are answered: the health port if there is one, else the gRPC port."""
        return f"127.0.0.1:{self.health_port}" if self.health_port is not None else self.target

    def _ready(self) -> bool:
        return health_status(self.health_target) == health_pb2.HealthCheckResponse.SERVING
