"""Fixtures of the auth service's tests: a real Postgres database, real detector and embedder processes.

Test modules load them with ``pytest_plugins = ["tests.auth_fixtures"]`` and never import this module
(pytest must import it first to rewrite its asserts); helpers live in auth_helpers. The gRPC servers
start once per session (TensorFlow takes a while to load); each test that needs isolation gets its
own application (API key), so tests share the database without seeing each other's users.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from faceauth.grpc.launch import ServiceProcess
from faceauth_auth import apikeys, migrate
from faceauth_auth.app import create_app
from faceauth_auth.config import Settings
from faceauth_auth.db import Database, create_engine
from faceauth_auth.templatecrypto import generate_key_file
from faceauth_auth.tokens import write_key_pair
from tests.auth_helpers import Application, Headers, ModelServices, running, scratch_database, serving


@pytest.fixture(scope="session")
def model_services(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServices]:
    # The embedder serves mobilefacenet alone, as after an upgrade's migration window (test_model_migration).
    env = {"FACEAUTH_MODEL_DIR": str(model_dir), "PYTHONPATH": os.pathsep.join(sys.path),
           "TF_CPP_MIN_LOG_LEVEL": "2", "FACEAUTH_INTRA_OP_THREADS": "2", "FACEAUTH_EMBEDDER_LEGACY_MODELS": ""}
    logs = tmp_path_factory.mktemp("grpc")
    log_path = logs / "detector.log"
    with log_path.open("wb") as detector_log, (logs / "embedder.log").open("wb") as embedder_log:
        services = ModelServices(ServiceProcess("faceauth_detector", env, detector_log),
                                 ServiceProcess("faceauth_embedder", env, embedder_log), log_path)
        with running(services.detector, services.embedder):
            yield services


@pytest.fixture(scope="session")
def auth_database_url(postgres_url: str) -> Iterator[str]:
    with scratch_database(postgres_url) as url:
        yield url


@pytest.fixture
def fresh_db(postgres_url: str) -> Iterator[Database]:
    """A migrated database of the test's own on the real PostgreSQL (the audit chain of its own)."""
    with scratch_database(postgres_url) as url:
        engine = create_engine(url)
        migrate.upgrade(engine)
        yield Database(engine)
        engine.dispose()


@pytest.fixture(scope="session")
def jwt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("jwt")
    write_key_pair(directory, "ES256")
    return directory


@pytest.fixture(scope="session")
def template_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template-key") / "current.key"
    generate_key_file(path)
    return path


@pytest.fixture(scope="session")
def api_key_pepper_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-key-pepper") / "pepper"
    generate_key_file(path)
    return path


@pytest.fixture(scope="session")
def key_hasher(api_key_pepper_file: Path) -> apikeys.KeyHasher:
    return apikeys.KeyHasher(apikeys.load_pepper(api_key_pepper_file))


@pytest.fixture(scope="session")
def auth_settings(model_services: ModelServices, auth_database_url: str, jwt_dir: Path,
                  template_key_file: Path, api_key_pepper_file: Path) -> Settings:
    return Settings(database_url=auth_database_url, detector_target=model_services.detector.target,
                    embedder_target=model_services.embedder.target,
                    jwt_current_key_file=jwt_dir / "current.pem", jwt_next_key_file=jwt_dir / "next.pem",
                    template_key_file=template_key_file, api_key_pepper_file=api_key_pepper_file, grpc_timeout=5.0,
                    # Every test's requests come from 127.0.0.1 and many check refused keys; the limit on failed
                    # authentications has its own test (test_auth_security), with the default.
                    auth_failure_rate_limit="100000 per minute")


@pytest.fixture(scope="session")
def auth_app(auth_settings: Settings) -> Flask:
    return create_app(auth_settings)


@pytest.fixture(scope="session")
def make_app(auth_settings: Settings) -> Callable[..., Flask]:
    """Another app on the same database and services with some settings changed."""
    return lambda **changes: create_app(replace(auth_settings, **changes))


@pytest.fixture
def http(auth_app: Flask) -> FlaskClient:
    return auth_app.test_client()


@pytest.fixture(scope="session")
def auth_db(auth_app: Flask) -> Database:
    db: Database = auth_app.extensions["faceauth"].db
    return db


@pytest.fixture(scope="session")
def new_application(auth_db: Database, key_hasher: apikeys.KeyHasher) -> Callable[[], Application]:
    """A new application with an API key (every scope): its users are the calling test's alone."""
    def create() -> Application:
        name = f"test-{uuid.uuid4().hex[:10]}"
        with auth_db.transaction() as session:
            _, key = apikeys.create(session, name, hasher=key_hasher)
        return Application(name, {"Authorization": f"Bearer {key}"})
    return create


@pytest.fixture
def application(new_application: Callable[[], Application]) -> Application:
    return new_application()


@pytest.fixture
def headers(application: Application) -> Headers:
    return application.headers


@pytest.fixture(scope="session")
def served(auth_app: Flask) -> Iterator[str]:
    """The session's app on a real localhost port; yields its base URL."""
    with serving(auth_app) as url:
        yield url


@pytest.fixture(scope="session")
def photo(lfw: Path) -> Callable[[str, int], bytes]:
    """The bytes of LFW photo number ``index`` of ``name``."""
    return lambda name, index: (lfw / "images" / name / f"{name}_{index:04d}.jpg").read_bytes()
