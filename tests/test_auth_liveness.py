"""The per-application liveness policy with real photos: live faces and printed-photo attacks of one person."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from faceauth.grpc.launch import total
from faceauth_auth.__main__ import main as manage
from faceauth_auth.db import Database
from faceauth_auth.models import AuditEvent
from faceauth_auth.repositories import applications
from tests.auth_helpers import Application, body, error_code, scraped, upload

pytest_plugins = ["tests.auth_fixtures"]

# Subject 0002 of antispoof_print: two live frames above the liveness threshold, a printed photo below it.
ENROL, LOGIN = "ClientFace/0002/0002_01_00_01_192.jpg", "ClientFace/0002/0002_01_00_01_362.jpg"
PRINTED = "ImposterFace/0002/0002_01_01_02_189.jpg"


@pytest.fixture(scope="module")
def antispoof_photo(datasets: Path) -> Callable[[str], bytes]:
    return lambda name: (datasets / "antispoof_print" / name).read_bytes()


def _set_policy(monkeypatch: pytest.MonkeyPatch, database_url: str, app: str, policy: str) -> int:
    monkeypatch.setenv("FACEAUTH_DATABASE_URL", database_url)
    return manage(["apps", "liveness", "--app", app, "--policy", policy])


def _scores(http: FlaskClient, verdict: str, policy: str) -> float:
    return total(scraped(http), "faceauth_liveness_score_count", verdict=verdict, policy=policy)


def test_enforce_refuses_a_printed_photo_at_enrolment_and_login(
        http: FlaskClient, application: Application, antispoof_photo: Callable[[str], bytes],
        auth_database_url: str, auth_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """``enforce``, the policy's name before the challenge existed, is ``enforce-passive``: stored rows that
    still say it refuse, and a refused login answers exactly like a mismatch."""
    assert _set_policy(monkeypatch, auth_database_url, application.name, "enforce") == 0
    with auth_db.transaction() as session:
        found = applications.find(session, application.name)
        assert found is not None and found.liveness_policy == "enforce-passive"  # the CLI stores the new name
        found.liveness_policy = "enforce"  # as a row written before migration 0011, or by an older pod, says
    headers = application.headers
    refused = http.post("/auth/face-register", headers=headers, **upload("carol", antispoof_photo(PRINTED)))
    assert refused.status_code == 422 and error_code(refused) == "spoof_detected"
    assert http.get("/v1/users/carol", headers=headers).status_code == 404  # nothing was stored

    enrolled = http.post("/auth/face-register", headers=headers, **upload("carol", antispoof_photo(ENROL)))
    assert enrolled.status_code == 201
    spoofs = total(scraped(http), "faceauth_login_outcomes_total", outcome="spoof")
    attack = http.post("/auth/face-login", headers=headers, **upload("carol", antispoof_photo(PRINTED)))
    assert attack.status_code == 401 and body(attack) == {"error": {"code": "face_mismatch",
                                                                    "message": "the face does not match"}}
    assert total(scraped(http), "faceauth_login_outcomes_total", outcome="spoof") == spoofs + 1
    live = http.post("/auth/face-login", headers=headers, **upload("carol", antispoof_photo(LOGIN)))
    assert live.status_code == 200 and "access_token" in body(live)
    with auth_db.transaction() as session:  # the refused enrolment leaves no event; the refused login a spoof
        found = applications.find(session, application.name)
        assert found is not None
        events = session.execute(sa.select(AuditEvent.event, AuditEvent.outcome, AuditEvent.liveness_score).where(
            AuditEvent.application_id == found.id, AuditEvent.event.in_(("enrolment", "login")))
            .order_by(AuditEvent.id)).all()
    assert [(event, outcome) for event, outcome, _ in events] == [
        ("enrolment", "success"), ("login", "spoof"), ("login", "match")]
    assert all(score is not None and 0 <= score <= 1 for _, _, score in events)


def test_report_counts_the_score_but_lets_the_decision_stand(
        http: FlaskClient, application: Application, antispoof_photo: Callable[[str], bytes]) -> None:
    """The service default (FACEAUTH_LIVENESS_POLICY) is report: the printed photo is enrolled, and counted."""
    before = _scores(http, "spoof", "report")
    enrolled = http.post("/auth/face-register", headers=application.headers,
                         **upload("dave", antispoof_photo(PRINTED)))
    assert enrolled.status_code == 201
    assert _scores(http, "spoof", "report") == before + 1


def test_off_ignores_the_score_and_default_follows_the_service_again(
        http: FlaskClient, application: Application, antispoof_photo: Callable[[str], bytes],
        auth_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _set_policy(monkeypatch, auth_database_url, application.name, "off") == 0
    counted = _scores(http, "spoof", "report") + _scores(http, "spoof", "enforce-passive")
    assert http.post("/auth/face-register", headers=application.headers,
                     **upload("erin", antispoof_photo(PRINTED))).status_code == 201
    assert _scores(http, "spoof", "report") + _scores(http, "spoof", "enforce-passive") == counted
    assert _set_policy(monkeypatch, auth_database_url, application.name, "default") == 0
    assert http.post("/auth/face-register", headers=application.headers,
                     **upload("erin", antispoof_photo(PRINTED))).status_code == 201
    assert _scores(http, "spoof", "report") + _scores(http, "spoof", "enforce-passive") == counted + 1


def test_the_cli_refuses_an_unknown_application_and_policy(
        auth_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _set_policy(monkeypatch, auth_database_url, "no-such-application", "enforce") == 1
    with pytest.raises(SystemExit):
        _set_policy(monkeypatch, auth_database_url, "no-such-application", "strict")
