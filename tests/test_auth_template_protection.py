"""Template protection: embeddings sealed at rest, bound to their row, and no start without a key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from faceauth_auth import __main__ as cli
from faceauth_auth import apikeys, templatecrypto
from faceauth_auth.config import Settings
from faceauth_auth.models import Application as ApplicationRow
from faceauth_auth.models import FaceTemplate, User
from faceauth_auth.repositories import users
from faceauth_auth.templatecrypto import TemplateDecryptionError, TemplateKeyError
from tests.auth_helpers import ALICE, BOB, Application, Photo, body, upload

pytest_plugins = ["tests.auth_fixtures"]


def _templates_of(auth_app: Flask, application: Application) -> dict[str, FaceTemplate]:
    with auth_app.extensions["faceauth"].db.transaction() as session:
        rows = session.execute(sa.select(User.external_id, FaceTemplate).join(FaceTemplate.user)
                               .join(ApplicationRow, ApplicationRow.id == User.application_id)
                               .where(ApplicationRow.name == application.name)).all()
    return {row.external_id: row.FaceTemplate for row in rows}


def test_stored_bytes_are_not_the_embedding(http: FlaskClient, application: Application, auth_app: Flask,
                                            photo: Photo) -> None:
    headers = application.headers
    for _ in range(2):  # the same photo twice: a fresh nonce each time
        assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    cipher = auth_app.extensions["faceauth"].templates
    probe = auth_app.extensions["faceauth"].pipeline.probe(photo(ALICE, 2)).embedding
    with auth_app.extensions["faceauth"].db.engine.connect() as connection:
        stored = connection.execute(sa.text(
            "select t.key_id, t.embedding from face_templates t join users u on u.id = t.user_id "
            "join applications a on a.id = u.application_id where a.name = :name"), {"name": application.name}).all()
    assert len(stored) == 2 and stored[0].embedding != stored[1].embedding
    plaintext = users.to_bytes(probe)
    for key_id, sealed in stored:
        assert key_id == cipher.current_key_id
        assert plaintext[:16] not in sealed and len(sealed) == len(plaintext) + 12 + 16
    opened = [users.embedding_of(template, cipher) for template in _templates_of(auth_app, application).values()]
    assert all(np.allclose(embedding, probe, atol=1e-5) for embedding in opened)
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 200


def test_a_ciphertext_moved_to_another_row_does_not_open(http: FlaskClient, application: Application,
                                                         auth_app: Flask, photo: Photo) -> None:
    headers = application.headers
    for user, person in (("alice", ALICE), ("mallory", BOB)):
        assert http.post("/auth/face-register", headers=headers, **upload(user, photo(person, 2))).status_code == 201
    templates = _templates_of(auth_app, application)
    alice, mallory = templates["alice"], templates["mallory"]
    db, cipher = auth_app.extensions["faceauth"].db, auth_app.extensions["faceauth"].templates
    # Mallory swaps Alice's sealed embedding into her own row, hoping to log in as herself with Alice's face.
    with db.transaction() as session:
        session.execute(sa.update(FaceTemplate).where(FaceTemplate.id == mallory.id)
                        .values(embedding=alice.embedding, key_id=alice.key_id))
    moved = _templates_of(auth_app, application)["mallory"]
    with pytest.raises(TemplateDecryptionError, match="tampered with or moved"):
        users.embedding_of(moved, cipher)
    with db.transaction() as session:  # the row is Mallory's own again, so the next tests see a sane database
        session.execute(sa.delete(FaceTemplate).where(FaceTemplate.id == mallory.id))


def test_the_binding_names_row_owner_and_model() -> None:
    key = bytes(range(32))
    cipher = templatecrypto.TemplateCipher(key)
    template_id = uuid.uuid4()
    binding = templatecrypto.associated_data(template_id, 7, "dlib-resnet", 1, 128)
    key_id, sealed = cipher.seal(b"embedding", binding)
    assert cipher.open(key_id, sealed, binding) == b"embedding"
    for other in (templatecrypto.associated_data(uuid.uuid4(), 7, "dlib-resnet", 1, 128),
                  templatecrypto.associated_data(template_id, 8, "dlib-resnet", 1, 128),
                  templatecrypto.associated_data(template_id, 7, "dlib-resnet", 2, 128)):
        with pytest.raises(TemplateDecryptionError):
            cipher.open(key_id, sealed, other)
    with pytest.raises(TemplateDecryptionError, match="not configured"):
        templatecrypto.TemplateCipher(bytes(32)).open(key_id, sealed, binding)
    # Encryption off still opens rows sealed under a key it is given, and stores new ones plain.
    reader = templatecrypto.TemplateCipher(None, [key])
    assert reader.open(key_id, sealed, binding) == b"embedding" and reader.seal(b"plain", binding) == (None, b"plain")


def test_plaintext_rows_are_refused_once_encryption_is_on() -> None:
    key = bytes(range(32))
    binding = templatecrypto.associated_data(uuid.uuid4(), 7, "dlib-resnet", 1, 128)
    with pytest.raises(TemplateDecryptionError, match=r"unencrypted.*templates reencrypt"):
        templatecrypto.TemplateCipher(key).open(None, b"planted", binding)
    assert templatecrypto.TemplateCipher(key).for_resealing().open(None, b"planted", binding) == b"planted"
    assert templatecrypto.TemplateCipher(None, [key]).open(None, b"plain", binding) == b"plain"  # encryption off


def test_a_plaintext_template_is_not_used_until_reencrypt_seals_it(
        http: FlaskClient, make_app: Callable[..., Flask], application: Application, auth_app: Flask,
        template_key_file: Path, monkeypatch: pytest.MonkeyPatch, photo: Photo) -> None:
    """A face stored while encryption was off (key id NULL) is refused, not compared, until it is sealed."""
    plain = make_app(template_encryption=False, template_key_file=None).test_client()
    headers = application.headers
    assert plain.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    assert _templates_of(auth_app, application)["alice"].key_id is None
    for path in ("/auth/face-login", "/auth/face-verify"):
        refused = http.post(path, headers=headers, **upload("alice", photo(ALICE, 3)))
        assert refused.status_code == 500 and body(refused)["error"]["code"] == "internal_error", path
    refused = http.post("/auth/face-identify", headers=headers, **upload(None, photo(ALICE, 3)))
    assert refused.status_code == 500
    monkeypatch.setenv("FACEAUTH_DATABASE_URL", auth_app.extensions["faceauth"].db.engine.url
                       .render_as_string(hide_password=False))
    monkeypatch.setenv("FACEAUTH_TEMPLATE_KEY_FILE", str(template_key_file))
    monkeypatch.setattr(cli.logs, "configure", lambda *_: None)
    assert cli.main(["templates", "reencrypt"]) == 0
    sealed = _templates_of(auth_app, application)["alice"]
    assert sealed.key_id == auth_app.extensions["faceauth"].templates.current_key_id
    assert http.post("/auth/face-login", headers=headers, **upload("alice", photo(ALICE, 3))).status_code == 200


def test_no_key_no_start_unless_encryption_is_off(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    with pytest.raises(TemplateKeyError, match="FACEAUTH_TEMPLATE_KEY_FILE"):
        make_app(template_key_file=None)
    with pytest.raises(TemplateKeyError, match="cannot read"):
        make_app(template_key_file=tmp_path / "missing.key")
    (tmp_path / "short.key").write_text("c2hvcnQ=\n")
    with pytest.raises(TemplateKeyError, match="32 bytes"):
        make_app(template_key_file=tmp_path / "short.key")
    (tmp_path / "garbage.key").write_text("not base64 at all!\n")
    with pytest.raises(TemplateKeyError, match="not base64"):
        make_app(template_key_file=tmp_path / "garbage.key")
    plain = make_app(template_key_file=None, template_encryption=False)
    assert not plain.extensions["faceauth"].templates.encrypting


def test_settings_read_the_template_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEAUTH_TEMPLATE_ENCRYPTION", "off")
    monkeypatch.setenv("FACEAUTH_TEMPLATE_KEY_FILE", "/keys/current")
    monkeypatch.setenv("FACEAUTH_TEMPLATE_PREVIOUS_KEY_FILES", "/keys/a,/keys/b")
    settings = Settings.from_env()
    assert settings.template_encryption is False and settings.template_key_file == Path("/keys/current")
    assert settings.template_previous_key_files == (Path("/keys/a"), Path("/keys/b"))
    monkeypatch.delenv("FACEAUTH_TEMPLATE_ENCRYPTION")
    monkeypatch.delenv("FACEAUTH_TEMPLATE_KEY_FILE")
    with pytest.raises(TemplateKeyError):
        templatecrypto.from_settings(Settings.from_env())


def test_key_files_are_private_and_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.logs, "configure", lambda *_: None)  # keep pytest's logging as it is
    path = tmp_path / "keys" / "template.key"
    assert cli.main(["keys", "generate-template-key", "--out", str(path)]) == 0
    key = templatecrypto.load_key(path)
    assert templatecrypto.key_id_of(key) in capsys.readouterr().out
    assert path.stat().st_mode & 0o777 == 0o600
    assert cli.main(["keys", "generate-template-key", "--out", str(path)]) == 1
    assert templatecrypto.load_key(path) == key


def test_sqlite_seals_too_and_keeps_the_log_append_only(make_app: Callable[..., Flask], tmp_path: Path,
                                                        photo: Photo) -> None:
    app = make_app(database_url=f"sqlite:///{tmp_path}/faceauth.db")
    db = app.extensions["faceauth"].db
    with db.transaction() as session:
        _, key = apikeys.create(session, "sqlite-sealed", hasher=app.extensions["faceauth_api_key_hasher"])
    http, headers = app.test_client(), {"X-API-Key": key}
    assert http.post("/auth/face-register", headers=headers, **upload("alice", photo(ALICE, 2))).status_code == 201
    assert body(http.post("/auth/face-verify", headers=headers, **upload("alice", photo(ALICE, 3))))["match"] is True
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("select key_id from face_templates")).scalar_one() is not None
    for statement in ("update audit_events set outcome = 'forged'", "delete from audit_events"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.engine.begin() as connection:
            connection.execute(sa.text(statement))
