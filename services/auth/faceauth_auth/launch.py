"""Run the auth service under gunicorn, as production does, as a child process (benchmarks, fault tests).

The counterpart of faceauth.grpc.launch for the HTTP service: real workers, real threads, real
signals, so what is measured or broken is what runs in a pod.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from types import TracebackType
from typing import IO

import psutil

from faceauth.grpc.launch import free_port


class AuthProcess:
    """``gunicorn -c python:faceauth_auth.gunicorn_conf`` on a free 127.0.0.1 port with ``env`` on top of ours."""

    def __init__(self, env: Mapping[str, str], output: IO[bytes] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, "FACEAUTH_BIND_ADDRESS": "127.0.0.1", "FACEAUTH_PORT": str(self.port), **env}
        self._output = output
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> AuthProcess:
        """Start gunicorn and return once /readyz answers 200; RuntimeError if it exits or times out."""
        self.process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:faceauth_auth.gunicorn_conf"],
                                        env=self._env, stdout=self._output or subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT)
        give_up = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode} before auth was ready")
            if time.monotonic() > give_up:
                self.stop()
                raise RuntimeError(f"auth was not ready after {timeout:g} s")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def workers(self) -> list[psutil.Process]:
        """gunicorn's worker processes (the master's children)."""
        return psutil.Process(self.process.pid).children() if self.process is not None else []

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (gunicorn drains its workers), then SIGKILL if it is still there after ``timeout`` seconds.

        Returns gunicorn's exit status (0 for a clean shutdown), None when it was never started.
        """
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> AuthProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
