"""Operations: health, readiness, metrics, request ids, the API description, gunicorn and the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from faceauth.grpc.launch import total
from faceauth_auth import __main__ as cli
from faceauth_auth import apikeys
from faceauth_auth.db import Database, create_engine
from faceauth_auth.launch import AuthProcess
from faceauth_auth.tokens import load_key
from tests.auth_helpers import (
    ALICE,
    BOB,
    TWO_FACES,
    Headers,
    ModelServices,
    Photo,
    body,
    error_code,
    gunicorn_env,
    http_upload,
    samples,
    scraped,
    upload,
)

pytest_plugins = ["tests.auth_fixtures"]


def test_health_and_readiness(http: FlaskClient, make_app: Callable[..., Flask]) -> None:
    assert body(http.get("/healthz")) == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert body(ready)["checks"] == {"database": True, "detector": True, "embedder": True}
    started = time.monotonic()
    unready = make_app(detector_target="127.0.0.1:9").test_client().get("/readyz")
    assert time.monotonic() - started < 3
    assert unready.status_code == 503 and error_code(unready) == "not_ready"
    assert body(unready)["checks"]["detector"] is False


def test_metrics_count_logins_decisions_and_downstream_calls(http: FlaskClient, headers: Headers,
                                                             photo: Photo) -> None:
    before = scraped(http)
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    for image, status in ((photo(ALICE, 3), 200), (photo(BOB, 1), 401), (photo(*TWO_FACES), 422)):
        assert http.post("/auth/face-login", headers=headers, **upload("alice", image)).status_code == status
    after = scraped(http)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    for outcome in ("success", "mismatch", "no_face"):
        assert grew("faceauth_login_outcomes_total", outcome=outcome) == 1, outcome
    assert grew("faceauth_match_distance_count", decision="genuine") >= 1
    assert grew("faceauth_match_distance_count", decision="impostor") >= 1
    assert grew("faceauth_http_request_duration_seconds_count", endpoint="/auth/face-login", status="401") == 1
    assert grew("faceauth_downstream_request_duration_seconds_count", service="detector", code="OK") >= 4
    assert grew("faceauth_downstream_request_duration_seconds_count", service="embedder", code="OK") >= 3
    assert total(after, "faceauth_enrolled_templates", model="mobilefacenet/1") >= 1


def test_request_id_is_echoed_and_forwarded_to_the_detector(http: FlaskClient, headers: Headers, photo: Photo,
                                                            model_services: ModelServices) -> None:
    request_id = f"test-{uuid.uuid4().hex}"
    response = http.post("/v1/faces/detect", headers={**headers, "X-Request-ID": request_id},
                         **upload(None, photo(ALICE, 2)))
    assert response.status_code == 200 and response.headers["X-Request-ID"] == request_id
    generated = http.get("/healthz", headers={"X-Request-ID": "not a sane id\u00e9"}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    give_up = time.monotonic() + 5
    while request_id not in model_services.detector_log.read_text():
        assert time.monotonic() < give_up, "the detector never logged the request id"
        time.sleep(0.1)


def test_openapi_describes_exactly_the_served_routes(http: FlaskClient, auth_app: Flask) -> None:
    spec = body(http.get("/openapi.json"))
    assert spec["openapi"] == "3.1.0"
    served = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
              for rule in auth_app.url_map.iter_rules() if rule.endpoint != "static"
              for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert served == documented
    page = http.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert all(path in html for path, _ in documented)
    assert "<script" not in html


def test_the_auth_service_never_imports_the_model_code() -> None:
    """The auth image ships no ``facemodels`` (services/auth/Dockerfile), and TensorFlow would add ~450 MiB to
    every auth worker (the target is 250 MiB): models live in the model servers. Photos are decoded there
    too, so OpenCV stays out as well."""
    code = ("import sys, faceauth_auth.app, faceauth_auth.cli, faceauth_auth.gunicorn_conf; "
            "print(sorted(m for m in ('tensorflow', 'ai_edge_litert', 'facemodels', 'cv2') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_gunicorn_serves_the_api_and_the_multiprocess_metrics_on_separate_ports(
        tmp_path: Path, model_services: ModelServices, jwt_dir: Path, template_key_file: Path,
        api_key_pepper_file: Path, photo: Photo) -> None:
    """/metrics holds every decision's distance and every face's liveness score (histogram sums and buckets),
    which the API never returns: it is served on the metrics port alone, never on the API's."""
    key = f"gunicorn-bootstrap-{uuid.uuid4().hex}"
    env = {**gunicorn_env(model_services, jwt_dir, template_key_file, api_key_pepper_file, WORKERS="2",
                          DATABASE_URL=f"sqlite:///{tmp_path}/auth.db", BOOTSTRAP_API_KEY=key),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    with (tmp_path / "gunicorn.log").open("wb") as log:
        server = AuthProcess(env, log)
        try:
            server.start()
            for _ in range(6):  # spread over both workers
                with urllib.request.urlopen(http_upload(f"{server.url}/v1/faces/detect", {"X-API-Key": key}, None,
                                                        photo(ALICE, 2)), timeout=10) as response:
                    assert len(json.load(response)["faces"]) == 1
            for path, image in (("/auth/face-register", photo(ALICE, 2)), ("/auth/face-login", photo(ALICE, 3))):
                with urllib.request.urlopen(http_upload(f"{server.url}{path}", {"X-API-Key": key}, "alice", image),
                                            timeout=10) as response:
                    assert response.status in (200, 201)
            with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
                scraped_text = response.read().decode()
            for public in ("/metrics", "/metrics/"):
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(f"{server.url}{public}", timeout=10)
                assert refused.value.code == 404
                assert b"faceauth_" not in refused.value.read()
            with pytest.raises(urllib.error.HTTPError) as not_the_api:  # and the metrics port serves nothing else
                urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/healthz", timeout=10)
            assert not_the_api.value.code == 404
        finally:
            assert server.stop() == 0  # SIGTERM: gunicorn drains its workers and exits cleanly
    scraped = samples(scraped_text)
    assert total(scraped, "faceauth_http_request_duration_seconds_count", endpoint="/v1/faces/detect") == 6
    assert total(scraped, "faceauth_match_distance_count", decision="genuine") == 1
    assert total(scraped, "faceauth_liveness_score_count") == 2  # enrolment and login, policy report
    assert total(scraped, "faceauth_enrolled_templates") == 1
    lines = [json.loads(line) for line in (tmp_path / "gunicorn.log").read_text().splitlines() if line.startswith("{")]
    assert any(line["message"] == "http request" and line["endpoint"] == "/v1/faces/detect" for line in lines)
    assert all(key not in json.dumps(line) for line in lines)


def test_management_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                             api_key_pepper_file: Path, key_hasher: apikeys.KeyHasher) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("FACEAUTH_DATABASE_URL", url)
    monkeypatch.setenv("FACEAUTH_API_KEY_PEPPER_FILE", str(api_key_pepper_file))
    monkeypatch.setattr(cli.logs, "configure", lambda *_: None)  # keep pytest's logging as it is
    assert cli.main(["db", "upgrade"]) == 0
    assert cli.main(["keys", "create", "--app", "shop", "--operating-point", "strict"]) == 0
    printed = capsys.readouterr().out
    found = re.search(r"key id:\s+(\S+)\n(?:.*\n)*?api key:\s+(\S+)", printed)
    assert found is not None
    key_id, key = found.groups()
    db = Database(create_engine(url))
    with db.transaction() as session:
        client = apikeys.authenticate(session, key, key_hasher)
    assert client is not None and (client.application, client.operating_point, client.key_id) == ("shop", "strict",
                                                                                                  key_id)
    assert cli.main(["keys", "revoke", key_id]) == 0 and cli.main(["keys", "revoke", key_id]) == 1
    with db.transaction() as session:
        assert apikeys.authenticate(session, key, key_hasher) is None
    assert cli.main(["keys", "generate-jwt", "--out", str(tmp_path / "jwt"), "--algorithm", "RS256"]) == 0
    assert load_key(tmp_path / "jwt" / "next.pem").algorithm == "RS256"
