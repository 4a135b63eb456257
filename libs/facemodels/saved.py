"""Loading one model version (TensorFlow Serving layout) with the metadata faceauth ships beside it.

A version directory holds the SavedModel, its TFLite form (``lite.py``) and ``faceauth.json``.
The runtime decides which of the two runs: ``savedmodel`` (TensorFlow; GPUs), ``tflite`` (LiteRT
with XNNPACK; fastest on CPUs) or ``auto``, which takes TFLite when no GPU is visible.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facemodels.cpus import usable_cpus
from facemodels.lite import LITE_FILE, LiteRunner

log = logging.getLogger(__name__)

METADATA_FILE = "faceauth.json"
RUNTIMES = ("auto", "tflite", "savedmodel")

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Runtime:
    """How models run: ``kind`` one of RUNTIMES; ``threads`` for XNNPACK, 0 for every usable core
    (the CPU limit of the container, if lower than the cores; see cpus.py)."""

    kind: str = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        if self.kind not in RUNTIMES:
            raise ValueError(f"model runtime must be one of {', '.join(RUNTIMES)}, not {self.kind!r}")

    def resolve(self, path: Path) -> str:
        """The runtime for the model version at ``path``: ``tflite`` or ``savedmodel``."""
        if self.kind != "auto":
            return self.kind
        import tensorflow as tf  # imported where needed: the auth service imports Runtime and has no models

        on_gpu = bool(tf.config.list_physical_devices("GPU"))
        return "savedmodel" if on_gpu or not (path / LITE_FILE).exists() else "tflite"


DEFAULT_RUNTIME = Runtime()


def latest_version_dir(model_dir: Path, name: str) -> Path:
    """``<model_dir>/<name>/<highest integer version>``, as TensorFlow Serving picks it."""
    base = model_dir / name
    versions = sorted((int(p.name) for p in base.glob("[0-9]*") if p.name.isdigit()), reverse=True)
    if not versions:
        raise FileNotFoundError(f"no SavedModel for {name!r} under {base}; run `make models`")
    return base / str(versions[0])


class SignatureRunner:
    """Calls the SavedModel's ``serving_default`` through TensorFlow; eager calls are thread-safe."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self._loaded = tf.saved_model.load(str(path))  # the signature needs the restored object alive
        self._signature = self._loaded.signatures["serving_default"]

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        outputs = self._signature(**{k: tf.convert_to_tensor(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}


@dataclass
class SavedModel:
    """A loaded model version: its ``serving_default`` signature plus metadata (name, version, thresholds...)."""

    name: str
    version: int
    metadata: dict[str, Any]
    runtime: str  # what actually runs: "tflite" or "savedmodel"
    runner: Runner

    @classmethod
    def load(cls, model_dir: Path, name: str, runtime: Runtime = DEFAULT_RUNTIME) -> SavedModel:
        path = latest_version_dir(Path(model_dir), name)
        metadata = json.loads((path / METADATA_FILE).read_text())
        kind, version = runtime.resolve(path), int(path.name)
        threads = (runtime.threads or usable_cpus()) if kind == "tflite" else None  # TensorFlow sizes its own
        runner: Runner = LiteRunner(path / LITE_FILE, threads) if threads else SignatureRunner(path)
        log.info("model loaded", extra={"model": name, "version": version, "runtime": kind, "threads": threads})
        return cls(name=name, version=version, metadata=metadata, runtime=kind, runner=runner)

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Call ``serving_default`` with a batch of any size; thread-safe in both runtimes."""
        return self.runner(inputs)
