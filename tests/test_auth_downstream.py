"""The embedder dies: answers turn into quick 503s; it comes back: the service works again by itself."""

from __future__ import annotations

import time

from flask.testing import FlaskClient

from faceauth.grpc.launch import total
from tests.auth_helpers import ALICE, Headers, ModelServices, Photo, body, error_code, scraped, upload

pytest_plugins = ["tests.auth_fixtures"]


def _embedder_errors(http: FlaskClient) -> float:
    return total(scraped(http), "faceauth_downstream_errors_total", service="embedder", code="UNAVAILABLE")


def test_embedder_killed_gives_503_then_recovers_when_restarted(http: FlaskClient, headers: Headers, photo: Photo,
                                                                model_services: ModelServices) -> None:
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    embedder = model_services.embedder
    assert embedder.process is not None
    errors_before = _embedder_errors(http)
    embedder.process.kill()  # a crash, not a graceful shutdown
    embedder.process.wait(10)
    try:
        started = time.monotonic()
        down = http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3)))
        assert time.monotonic() - started < 3
        assert down.status_code == 503 and error_code(down) == "service_unavailable"
        assert down.headers["Retry-After"] == "1"
        assert _embedder_errors(http) > errors_before
        not_ready = http.get("/readyz")
        assert not_ready.status_code == 503 and body(not_ready)["checks"]["embedder"] is False
        # Nothing was stored by the failed enrolment.
        failed = http.post("/auth/face-register", headers=headers, **upload("bob", photo(ALICE, 4)))
        assert failed.status_code == 503 and http.get("/v1/users/bob", headers=headers).status_code == 404
    finally:
        embedder.start()  # same port
    for _ in range(120):  # up to a minute for the channel to reconnect
        login = http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3)))
        if login.status_code != 503:
            break
        time.sleep(0.5)
    assert login.status_code == 200, body(login)
    assert http.get("/readyz").status_code == 200
