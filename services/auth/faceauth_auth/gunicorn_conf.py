"""gunicorn settings: ``gunicorn -c python:faceauth_auth.gunicorn_conf`` serves the auth service.

The master prepares the database once before forking (so workers never race on migrations), and
every worker is a separate process, so Prometheus metrics go through PROMETHEUS_MULTIPROC_DIR.
gunicorn listens on two ports: the API's (FACEAUTH_PORT) and the metrics' (FACEAUTH_METRICS_PORT);
every worker serves both, each request the app of its port (faceauth_auth.wsgi).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from faceauth.config import env_int, env_str
from faceauth_auth.config import Settings  # no prometheus_client behind it

# prometheus_client picks its multi-process mode when first imported, so the directory is chosen
# before anything imports it; files of a previous run would add old counts, so they go.
_METRICS_DIR = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="faceauth-metrics-")))

wsgi_app = "faceauth_auth.wsgi:application"
_ADDRESS = env_str("FACEAUTH_BIND_ADDRESS", "0.0.0.0")
_PORT = env_int("FACEAUTH_PORT", 8000)
_METRICS_PORT = env_int("FACEAUTH_METRICS_PORT", Settings.metrics_port)
if _METRICS_PORT == _PORT:
    raise ValueError(f"FACEAUTH_METRICS_PORT must differ from FACEAUTH_PORT ({_PORT}): /metrics stays off the API")
bind = [f"{_ADDRESS}:{_PORT}", f"{_ADDRESS}:{_METRICS_PORT}"]
workers = env_int("FACEAUTH_WORKERS", 2)
# Threads: a request mostly waits on the detector, the embedder and the database. Four times the admission
# slots (FACEAUTH_MAX_INFLIGHT): past capacity the spare threads answer 503 overloaded at once and keep health
# checks answering, where gunicorn's own queue would only make every request wait longer (faceauth_auth.admission).
worker_class = "gthread"
threads = env_int("FACEAUTH_THREADS", 16)
timeout = 30
graceful_timeout = 25  # Kubernetes kills the pod 30 s after SIGTERM by default
errorlog = "-"
# gunicorn's own messages as the same JSON lines as the app's (faceauth.logs).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "faceauth.logs.JsonFormatter", "service": "auth"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False}},
}


# The hooks import lazily so that nothing imports prometheus_client before the variable above is set.
def on_starting(server: Any) -> None:
    _METRICS_DIR.mkdir(parents=True, exist_ok=True)
    for stale in _METRICS_DIR.glob("*.db"):
        stale.unlink()
    from faceauth import logs
    from faceauth_auth.db import create_engine
    from faceauth_auth.migrate import prepare
    from faceauth_auth.ratelimit import check_storage
    from faceauth_auth.templatecrypto import from_settings

    settings = Settings.from_env()
    logs.configure("auth", settings.log_level)
    # Both stop the master before any worker starts: a missing template key, and in-memory rate limits that
    # each of several workers would count alone (gunicorn prints the message and exits with 1).
    from_settings(settings)
    check_storage(settings.rate_limit_storage_uri, server.cfg.workers, settings.rate_limit_allow_per_worker)
    engine = create_engine(settings.database_url)
    prepare(settings, engine)
    engine.dispose()  # no connection may cross the fork


def child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
