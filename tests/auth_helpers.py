"""Helpers and constants of the auth service's tests (the fixtures are in auth_fixtures)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pgserver
import sqlalchemy as sa
from flask import Flask
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy.engine import make_url
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.test import Client, TestResponse

from faceauth.grpc.launch import ServiceProcess
from faceauth_auth.app import create_metrics_app
from faceauth_auth.db import Database, create_engine

# LFW people and photos with exactly one face in them (checked with /v1/faces/detect).
ALICE = "Tony_Blair"  # photos 2-6; photo 1 shows a second face
BOB = "Serena_Williams"  # photos 1-3, 5, 6
CAROL = "Laura_Bush"  # photos 1, 3-6
TWO_FACES = (ALICE, 1)
STRANGER = ("Andre_Agassi", 1)  # far from all three (Hans_Blix_0002 is a false match for ALICE)

Headers = dict[str, str]
Photo = Callable[[str, int], bytes]


@dataclass
class ModelServices:
    """The detector and embedder as production runs them: `python -m` processes on free local ports."""

    detector: ServiceProcess
    embedder: ServiceProcess
    detector_log: Path


@dataclass(frozen=True)
class Application:
    """A client application of the test database and the headers that carry its API key."""

    name: str
    headers: Headers


@contextmanager
def running(*processes: ServiceProcess) -> Iterator[None]:
    """The model servers started in parallel (each loads and warms up its models), stopped at the end."""
    try:
        with ThreadPoolExecutor(len(processes)) as pool:
            list(pool.map(ServiceProcess.start, processes))
        yield
    finally:
        for process in processes:
            process.stop()


def gunicorn_env(model_services: ModelServices, jwt_dir: Path, template_key_file: Path, api_key_pepper_file: Path,
                 **settings: str) -> dict[str, str]:
    """The environment of auth under gunicorn on the session's model servers and keys; ``settings`` are further
    FACEAUTH_* variables, named without the prefix."""
    return {"PYTHONPATH": os.pathsep.join(sys.path),
            "FACEAUTH_DETECTOR_TARGET": model_services.detector.target,
            "FACEAUTH_EMBEDDER_TARGET": model_services.embedder.target,
            "FACEAUTH_JWT_CURRENT_KEY_FILE": str(jwt_dir / "current.pem"),
            "FACEAUTH_JWT_NEXT_KEY_FILE": str(jwt_dir / "next.pem"),
            "FACEAUTH_TEMPLATE_KEY_FILE": str(template_key_file),
            "FACEAUTH_API_KEY_PEPPER_FILE": str(api_key_pepper_file),
            **{f"FACEAUTH_{name}": value for name, value in settings.items()}}


def application_id(db: Database, application: Application) -> int:
    """The database id of a test application."""
    with db.transaction() as session:
        return int(session.scalar(sa.text("select id from applications where name = :n"), {"n": application.name}))


def upload(user_id: str | None, image: bytes) -> dict[str, Any]:
    """Keyword arguments of a Flask test-client call posting a multipart upload."""
    data: dict[str, Any] = {"image": (io.BytesIO(image), "photo.jpg")}
    if user_id is not None:
        data["user_id"] = user_id
    return {"data": data, "content_type": "multipart/form-data"}


def transformed(image: bytes, change: Callable[[Image.Image], Image.Image]) -> bytes:
    """``image`` changed by ``change`` and saved again as JPEG."""
    out = io.BytesIO()
    change(Image.open(io.BytesIO(image)).convert("RGB")).save(out, format="JPEG", quality=95)
    return out.getvalue()


def template_rows(db_url: str, face_ids: list[str]) -> int:
    """How many face_templates rows with these ids exist, counted on a connection of its own."""
    engine = create_engine(db_url)
    with engine.connect() as connection:
        count = connection.execute(sa.text("select count(*) from face_templates where cast(id as text) = any(:ids)"),
                                   {"ids": [str(uuid.UUID(i)) for i in face_ids]}).scalar_one()
    engine.dispose()
    return int(count)


def body(response: TestResponse) -> dict[str, Any]:
    """The JSON object a response carries (fails the test when there is none)."""
    data = response.get_json(silent=True)
    assert isinstance(data, dict), f"{response.status}: {response.get_data(as_text=True)[:200]}"
    return data


def error_code(response: TestResponse) -> str:
    return str(body(response)["error"]["code"])


def http_upload(url: str, headers: Headers, user_id: str | None, image: bytes) -> urllib.request.Request:
    """A multipart/form-data POST for urllib (which has no encoder of its own) to a served app."""
    boundary = uuid.uuid4().hex
    fields = "" if user_id is None else (f'--{boundary}\r\nContent-Disposition: form-data; name="user_id"\r\n\r\n'
                                         f"{user_id}\r\n")
    data = (f'{fields}--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return urllib.request.Request(url, data=data, method="POST",
                                  headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})


@contextmanager
def redis_server(args: Sequence[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``redis-server *args`` (Valkey's or Redis'), which must listen on 127.0.0.1:``port``, while the block runs."""
    from tests.helm.support import tool

    with tempfile.TemporaryDirectory(prefix="faceauth-redis-") as directory:
        server = subprocess.Popen([tool("redis-server"), *args, "--dir", directory], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT)
        try:
            give_up = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > give_up:
                        raise RuntimeError(f"redis-server {' '.join(args)} did not listen on {port}") from None
                    time.sleep(0.05)
            yield server
        finally:
            server.terminate()
            server.wait(10)


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` on a real localhost port (werkzeug, threaded) while the block runs; yields its base URL."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@contextmanager
def scratch_database(postgres_url: str) -> Iterator[str]:
    """A database of its own on the real Postgres, dropped at the end, so parallel runs never collide."""
    name = f"faceauth_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'create database "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


@contextmanager
def own_pgserver(name: str) -> Iterator[pgserver.PostgresServer]:
    """A Postgres server of the caller's own (PyPI pgserver, with pgvector), stopped and removed afterwards.

    Its data directory is a new folder of the system's temporary directory, not of pytest's base
    temporary directory: every pytest session on the machine resets that one to mode 0700, and the
    server runs as another user (pgserver's, when we are root) who must keep reaching it.
    """
    with tempfile.TemporaryDirectory(prefix=f"faceauth-{name}-pg-") as pgdata:
        server = pgserver.get_server(Path(pgdata), cleanup_mode="stop")
        try:
            yield server
        finally:
            server.cleanup()


def sqlalchemy_url(server: pgserver.PostgresServer) -> str:
    """The server's URL for SQLAlchemy with psycopg2 (a Unix socket)."""
    return server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)


def samples(exposition: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition."""
    return [sample for family in text_string_to_metric_families(exposition) for sample in family.samples]


def scraped(http: Any) -> list[Sample]:
    """Every sample the metrics port of ``http``'s app (a FlaskClient's) serves; the API's port has no /metrics."""
    response = Client(create_metrics_app(http.application)).get("/metrics")
    assert response.status_code == 200
    return samples(response.get_data(as_text=True))
