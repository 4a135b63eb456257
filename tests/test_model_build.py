"""Model acquisition: sha256 pinning and the warm-cache rebuild."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facemodels import fetch
from tests.conftest import PROJECT_ROOT


def test_checksum_mismatch_stops_with_a_clear_error_and_drops_the_file(tmp_path: Path) -> None:
    package = fetch.PinnedPackage(name="@vladmandic/face-api", registry="npm", version="1.7.15", sha256="0" * 64)
    tampered = tmp_path / package.tarball_name
    tampered.write_bytes(b"not the real package")
    with pytest.raises(fetch.ChecksumMismatch, match="does not match the pinned"):
        fetch.fetch(package, tmp_path)
    assert not tampered.exists()


def test_every_locked_package_pins_version_and_sha256() -> None:
    lock = json.loads((PROJECT_ROOT / "models.lock.json").read_text())
    for name, package in lock["packages"].items():
        assert package["version"][0].isdigit(), name
        assert len(package["sha256"]) == 64, name
    for model in lock["models"].values():
        assert model["package"] in lock["packages"]


def test_second_build_with_warm_cache_does_nothing(model_dir: Path) -> None:
    before = {p: p.stat().st_mtime for p in model_dir.rglob("saved_model.pb")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "facemodels.build", "--lock", str(PROJECT_ROOT / "models.lock.json"),
                    "--out", str(model_dir)], check=True, capture_output=True)
    assert time.perf_counter() - started < 60  # generous; the real figure is a few seconds
    assert before == {p: p.stat().st_mtime for p in model_dir.rglob("saved_model.pb")}


def test_models_are_laid_out_the_tensorflow_serving_way(model_dir: Path) -> None:
    import tensorflow as tf

    lock = json.loads((PROJECT_ROOT / "models.lock.json").read_text())
    for name, entry in lock["models"].items():
        version_dir = model_dir / name / str(entry["version"])
        assert (version_dir / "saved_model.pb").is_file()
        assert "serving_default" in tf.saved_model.load(str(version_dir)).signatures
        assert (version_dir / "model.tflite").stat().st_size > 10_000  # the CPU form (facemodels/lite.py)
        metadata = json.loads((version_dir / "faceauth.json").read_text())
        assert metadata["name"] == name and metadata["package"].endswith(lock["packages"][entry["package"]]["version"])
