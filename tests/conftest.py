"""Shared fixtures: where the real datasets live and how to reach the real PostgreSQL."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from facemodels.detector import FaceDetector
from facemodels.embedder import FaceEmbedder

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--shared", default=str(PROJECT_ROOT.parent / "shared"),
                     help="folder holding datasets/ (lfw, wider_face, antispoof_print)")


@pytest.fixture(autouse=True)
def _root_logger_kept() -> Iterator[None]:
    """Put the root logger back after each test.

    Commands under test (``main()``) point it at the stdout pytest captured, which is closed by the
    time pgserver's exit hook logs: Python then printed "Logging error" tracebacks after the run.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def datasets(request: pytest.FixtureRequest) -> Path:
    path = Path(request.config.getoption("--shared")).resolve() / "datasets"
    if not (path / "lfw" / "pairs.tsv").is_file():
        pytest.fail(f"real face datasets not found under {path}; pass --shared DIR")
    return path


@pytest.fixture(scope="session")
def lfw(datasets: Path) -> Path:
    return datasets / "lfw"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return os.environ.get("FACEAUTH_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def model_dir() -> Path:
    path = Path(os.environ.get("FACEAUTH_MODEL_DIR", PROJECT_ROOT / "var" / "models"))
    if not (path / "blazeface").is_dir():
        pytest.fail(f"no converted models under {path}; run `make models`")
    return path


@pytest.fixture(scope="session")
def detector(model_dir: Path) -> FaceDetector:
    return FaceDetector.load(model_dir)


@pytest.fixture(scope="session")
def embedder(model_dir: Path) -> FaceEmbedder:
    return FaceEmbedder.load(model_dir)


@pytest.fixture(scope="session")
def wider(datasets: Path) -> Path:
    return datasets / "wider_face"
