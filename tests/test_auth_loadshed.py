"""Past capacity the auth service refuses quickly with 503 overloaded, stores nothing, and then serves again;
the load generator's core runs against the test stack and reports every step."""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from faceauth.grpc.launch import ServiceProcess, total
from faceauth_auth import loadtest
from faceauth_auth.admission import Admission
from tests.auth_helpers import (
    ALICE,
    BOB,
    CAROL,
    Application,
    Headers,
    ModelServices,
    Photo,
    body,
    error_code,
    scraped,
    upload,
)

pytest_plugins = ["tests.auth_fixtures"]

SLOTS = 2


def _metric(http: FlaskClient, name: str) -> float:
    return total(scraped(http), name)


@contextmanager
def _paused(service: ServiceProcess) -> Iterator[None]:
    """The model server stops answering (SIGSTOP) as if swamped, and carries on afterwards."""
    assert service.process is not None
    os.kill(service.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(service.process.pid, signal.SIGCONT)


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    give_up = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < give_up, f"still not {what} after {seconds:g} s"
        time.sleep(0.05)


def test_admission_needs_a_slot_and_a_wait() -> None:
    with pytest.raises(ValueError):
        Admission(0, 0.5)
    with pytest.raises(ValueError):
        Admission(1, -1)


def test_face_requests_beyond_the_slots_get_503_overloaded_and_change_nothing(
        make_app: Callable[..., Flask], headers: Headers, photo: Photo, model_services: ModelServices) -> None:
    # A long gRPC deadline: the requests holding the slots wait for the paused detector, not time out.
    app = make_app(max_inflight=SLOTS, admission_wait=0.05, grpc_timeout=60.0)
    http = app.test_client()
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    shed_before = _metric(http, "faceauth_requests_shed_total")

    def register(user_id: str, image: bytes) -> int:
        return app.test_client().post("/auth/face-register", headers=headers, **upload(user_id, image)).status_code

    with ThreadPoolExecutor(SLOTS) as pool:
        with _paused(model_services.detector):
            holding: list[Future[int]] = [pool.submit(register, f"held{n}", photo(BOB, n + 1)) for n in range(SLOTS)]
            _wait_for(lambda: _metric(http, "faceauth_face_requests_in_flight") == SLOTS, "both slots taken")
            refused = [http.post("/auth/face-register", headers=headers, **upload("carol", photo(CAROL, 1))),
                       http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))),
                       http.post("/v1/faces/detect", headers=headers, **upload(None, photo(ALICE, 4)))]
        assert [future.result() for future in holding] == [201] * SLOTS

    for response in refused:
        assert response.status_code == 503 and error_code(response) == "overloaded", body(response)
        assert response.headers["Retry-After"] == "1"
    assert _metric(http, "faceauth_requests_shed_total") == shed_before + len(refused)
    assert _metric(http, "faceauth_face_requests_in_flight") == 0
    # The refused enrolment stored nothing: no carol, and alice still has her one face.
    assert http.get("/v1/users/carol", headers=headers).status_code == 404
    assert len(body(http.get("/v1/users/alice/faces", headers=headers))["faces"]) == 1
    # And with the slots free again, the same requests are served.
    assert http.post("/auth/face-register", headers=headers, **upload("carol", photo(CAROL, 1))).status_code == 201
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 200


def test_load_generator_reports_each_step_and_a_verdict(served: str, application: Application, lfw: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    target = loadtest.Target(served, application.headers["Authorization"].removeprefix("Bearer "))
    people = [lfw / "images" / name for name in (ALICE, BOB, CAROL)]
    seeded = loadtest.seed(target, people, 6, "smoke", timeout=30)
    assert seeded.users == ["smoke-0", "smoke-1", "smoke-decoy"] and seeded.genuine
    counter = itertools.count()

    report = loadtest.run(target, seeded.plan(random.Random(0)), [1, 2], 1, 1.0, 30,
                          lambda: f"smoke-new-{next(counter)}", lambda: [])

    assert [step.clients for step in report.steps] == [1, 2, 1]
    assert all(step.answers and step.logins for step in report.steps)
    codes = {answer.code for step in report.steps for answer in step.answers}
    assert codes <= loadtest.NORMAL, codes  # far below capacity: nothing shed, nothing unanswered
    assert report.ok and not report.shed and report.unanswered == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == loadtest.HEADER and len(lines) == 1 + len(report.steps)
    assert [int(line.split()[0]) for line in lines[1:]] == [1, 2, 1]
    verdict = report.verdict(30)
    assert verdict[-1] == "verdict: PASS"
    assert any(line.startswith("shed load with 429/503: no") for line in verdict)
