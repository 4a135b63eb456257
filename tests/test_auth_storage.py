"""Storage: migrations, the embedded SQLite default, pgvector's HNSW search, model versions kept apart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from flask import Flask
from flask.testing import FlaskClient

from faceauth_auth import __main__ as cli
from faceauth_auth import apikeys, migrate, search, templatecrypto
from faceauth_auth.db import Database, create_engine
from faceauth_auth.faces import EmbeddingModel
from faceauth_auth.models import Base, FaceTemplate
from faceauth_auth.repositories import users
from faceauth_auth.templatecrypto import NONCE_BYTES
from tests.auth_helpers import (
    ALICE,
    BOB,
    CAROL,
    STRANGER,
    Application,
    Headers,
    Photo,
    application_id,
    body,
    error_code,
    own_pgserver,
    scratch_database,
    sqlalchemy_url,
    upload,
)

pytest_plugins = ["tests.auth_fixtures"]

TABLES = {"applications", "api_keys", "users", "face_templates", "login_attempts", "audit_events"}


def _headers(app: Flask, application: str = "storage-test") -> Headers:
    with app.extensions["faceauth"].db.transaction() as session:
        _, key = apikeys.create(session, application, hasher=app.extensions["faceauth_api_key_hasher"])
    return {"X-API-Key": key}


def _enrol_three(http: FlaskClient, headers: Headers, photo: Photo) -> None:
    for user, person, index in (("alice", ALICE, 2), ("bob", BOB, 1), ("carol", CAROL, 1)):
        response = http.post("/auth/face-register", headers=headers, **upload(user, photo(person, index)))
        assert response.status_code == 201


@pytest.fixture(scope="module")
def pgvector_url() -> Iterator[str]:
    """A throw-away Postgres with the pgvector extension (PyPI pgserver), on a Unix socket."""
    with own_pgserver("pgvector") as server:
        yield sqlalchemy_url(server)


def _migrate_down_and_up(engine: sa.Engine) -> None:
    """Upgrade (twice: the second has nothing to do), downgrade to nothing, upgrade again."""
    migrate.upgrade(engine)
    migrate.upgrade(engine)
    assert set(sa.inspect(engine).get_table_names()) >= TABLES
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert not TABLES & set(sa.inspect(engine).get_table_names())
    migrate.upgrade(engine)


def test_migrations_upgrade_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/nested/faceauth.db")
    _migrate_down_and_up(engine)
    assert Database(engine).vector_dimensions == frozenset()


def test_migrations_downgrade_and_upgrade_again_on_postgres(postgres_url: str) -> None:
    with scratch_database(postgres_url) as url:
        engine = create_engine(url)
        try:
            _migrate_down_and_up(engine)
        finally:
            engine.dispose()


def test_migrations_build_the_schema_the_models_describe(auth_db: Database) -> None:
    """A model change without its migration (or the reverse) shows here, on the session's Postgres."""
    with auth_db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_sqlite_default_runs_the_whole_flow(make_app: Callable[..., Flask], tmp_path: Path, photo: Photo) -> None:
    app = make_app(database_url=f"sqlite:///{tmp_path}/faceauth.db")
    http, headers = app.test_client(), _headers(app)
    _enrol_three(http, headers, photo)
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 200
    assert body(http.post("/auth/face-identify", headers=headers, **upload(None, photo(BOB, 2))))["user_id"] == "bob"
    assert http.delete("/v1/users/alice", headers=headers).status_code == 204
    with app.extensions["faceauth"].db.engine.connect() as connection:
        assert connection.execute(sa.text("select count(*) from face_templates")).scalar_one() == 2


def test_pgvector_identifies_through_the_hnsw_index(make_app: Callable[..., Flask], pgvector_url: str,
                                                    photo: Photo) -> None:
    admin = create_engine(pgvector_url)
    with admin.begin() as connection:
        # Postgres scans a handful of rows exactly; without sorting, only the HNSW index gives the order.
        connection.execute(sa.text("alter database postgres set enable_sort = off"))
    app = make_app(database_url=pgvector_url, template_encryption=False, template_key_file=None)
    db: Database = app.extensions["faceauth"].db
    assert db.vector_dimensions == {128, 192}  # dlib-resnet and mobilefacenet
    http, headers = app.test_client(), _headers(app)
    _enrol_three(http, headers, photo)
    found = body(http.post("/auth/face-identify", headers=headers, **upload(None, photo(CAROL, 3))))
    assert found["match"] is True and found["user_id"] == "carol"
    stranger = body(http.post("/auth/face-identify", headers=headers, **upload(None, photo(*STRANGER))))
    assert stranger["match"] is False and stranger["user_id"] is None
    db.engine.dispose()  # a backend reports its statistics when its connection ends
    assert _hnsw_scans(admin) >= 2
    # The in-process exact search agrees with the index.
    probe = app.extensions["faceauth"].pipeline.probe(photo(CAROL, 3))
    plain = app.extensions["faceauth"].templates
    with db.transaction() as session:
        application_id = session.scalar(sa.text("select id from applications where name = 'storage-test'"))
        by_index = search.nearest(session, application_id, probe.info.model, probe.embedding, frozenset({192}), 100,
                                   plain)
        exact = search.nearest(session, application_id, probe.info.model, probe.embedding, frozenset(), 100,
                               plain)
    assert by_index is not None and exact is not None
    assert by_index[0] == exact[0] == "carol" and by_index[1] == pytest.approx(exact[1], abs=1e-5)
    admin.dispose()


def test_rotation_seals_every_template_under_the_new_key(make_app: Callable[..., Flask], pgvector_url: str,
                                                        template_key_file: Path, tmp_path: Path, photo: Photo,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # Alice enrolled before encryption was on (plaintext, pgvector copy), Bob under the old key.
    plain = make_app(database_url=pgvector_url, template_encryption=False, template_key_file=None)
    headers = _headers(plain, "rotation-test")
    assert plain.test_client().post("/auth/face-register", headers=headers,
                                    **upload("alice", photo(ALICE, 2))).status_code == 201
    old = make_app(database_url=pgvector_url)
    assert old.test_client().post("/auth/face-register", headers=headers,
                                  **upload("bob", photo(BOB, 1))).status_code == 201
    # With encryption on, Alice's plaintext row is refused until it is sealed (test_auth_template_protection),
    # and Bob's face gets no vector copy.
    assert old.test_client().post("/auth/face-login", headers=headers,
                                  **upload("alice", photo(ALICE, 3))).status_code == 500
    with create_engine(pgvector_url).connect() as connection:
        assert connection.execute(sa.text(
            "select count(t.embedding_vec_192) from face_templates t join users u on u.id = t.user_id "
            "join applications a on a.id = u.application_id where a.name = 'rotation-test' "
            "and u.external_id = 'bob'")).scalar_one() == 0
    new_key = tmp_path / "new.key"
    new_key_id = templatecrypto.generate_key_file(new_key)
    for variable, value in (("FACEAUTH_DATABASE_URL", pgvector_url), ("FACEAUTH_TEMPLATE_KEY_FILE", str(new_key)),
                            ("FACEAUTH_TEMPLATE_PREVIOUS_KEY_FILES", str(template_key_file))):
        monkeypatch.setenv(variable, value)
    monkeypatch.setattr(cli.logs, "configure", lambda *_: None)  # keep pytest's logging as it is

    assert cli.main(["templates", "reencrypt", "--batch-size", "1"]) == 0
    with create_engine(pgvector_url).connect() as connection:
        keys: dict[str, int] = dict(connection.execute(sa.text(
            "select coalesce(key_id, 'none'), count(*) from face_templates group by 1")).all())
        vectors = connection.execute(sa.text(
            "select count(embedding_vec_128) + count(embedding_vec_192) from face_templates")).scalar_one()
    assert set(keys) == {new_key_id} and vectors == 0
    capsys.readouterr()
    assert cli.main(["audit", "list", "--event", "template_key_rotated"]) == 0
    rotations = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rotations) == keys[new_key_id]  # one batch of one each, each recorded
    assert cli.main(["templates", "reencrypt"]) == 0 and capsys.readouterr().out.startswith("0 templates")

    # Only the new key now: logins and identification still work, through the exact search.
    rotated = make_app(database_url=pgvector_url, template_key_file=new_key)
    http = rotated.test_client()
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 200
    assert body(http.post("/auth/face-identify", headers=headers, **upload(None, photo(BOB, 2))))["user_id"] == "bob"
    assert cli.main(["audit", "list", "--app", "rotation-test", "--user-id", "alice", "--limit", "1"]) == 0
    (login,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    threshold = rotated.extensions["faceauth"].pipeline.served_models().primary.default_threshold
    assert login["event"] == "login" and login["outcome"] == "match" and 0 < login["distance"] < threshold


def _hnsw_scans(engine: sa.Engine) -> int:
    """Index scans of the HNSW index so far, once the backends that made them have reported."""
    query = sa.text("select idx_scan from pg_stat_user_indexes "
                    "where indexrelname = 'ix_face_templates_embedding_192_hnsw'")
    give_up = time.monotonic() + 5
    while True:
        with engine.connect() as connection:
            scans = int(connection.execute(query).scalar_one())
        if scans or time.monotonic() > give_up:
            return scans
        time.sleep(0.2)


def test_templates_of_another_model_version_are_never_compared(http: FlaskClient, application: Application,
                                                                auth_app: Flask, photo: Photo) -> None:
    headers = application.headers
    auth_db, cipher = auth_app.extensions["faceauth"].db, auth_app.extensions["faceauth"].templates
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    with auth_db.transaction() as session:
        alice = users.find(session, application_id(auth_db, application), "alice")
        assert alice is not None
        template = users.templates(session, alice)[0]
        old_model = EmbeddingModel(template.model_name, template.model_version - 1, template.dimensions)
        # Mallory's only face is Alice's own embedding, but from an older model version.
        mallory = users.find_or_create(session, alice.application_id, "mallory")
        users.add_template(session, mallory, old_model, users.embedding_of(template, cipher), frozenset(), cipher)
    # A user with no template a served model can compare with answers like an unknown user.
    refused = http.post("/auth/face-login", headers=headers, **upload("mallory", photo(ALICE, 2)))
    assert refused.status_code == 401 and error_code(refused) == "face_mismatch"
    unknown = http.post("/auth/face-verify", headers=headers, **upload("nobody", photo(ALICE, 2)))
    refused = http.post("/auth/face-verify", headers=headers, **upload("mallory", photo(ALICE, 2)))
    assert refused.status_code == unknown.status_code == 404 and body(refused) == body(unknown)
    found = body(http.post("/auth/face-identify", headers=headers, **upload(None, photo(ALICE, 2))))
    assert found["user_id"] == "alice"
    with auth_db.transaction() as session:
        stored = session.scalars(sa.select(FaceTemplate.embedding).where(
            FaceTemplate.user_id == alice.id)).all()
    # nonce + float32 embedding + GCM tag
    assert stored and all(len(blob) == NONCE_BYTES + 192 * np.dtype("<f4").itemsize + 16 for blob in stored)


