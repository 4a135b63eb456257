"""Loading one SavedModel (TensorFlow Serving layout) with the metadata faceauth ships beside it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

METADATA_FILE = "faceauth.json"


def latest_version_dir(model_dir: Path, name: str) -> Path:
    """``<model_dir>/<name>/<highest integer version>``, as TensorFlow Serving picks it."""
    base = model_dir / name
    versions = sorted((int(p.name) for p in base.glob("[0-9]*") if p.name.isdigit()), reverse=True)
    if not versions:
        raise FileNotFoundError(f"no SavedModel for {name!r} under {base}; run `make models`")
    return base / str(versions[0])


@dataclass
class SavedModel:
    """A loaded ``serving_default`` signature plus its metadata (name, version, thresholds...)."""

    name: str
    version: int
    metadata: dict[str, Any]
    loaded: Any  # the restored object; its signature needs it alive

    @classmethod
    def load(cls, model_dir: Path, name: str) -> SavedModel:
        path = latest_version_dir(Path(model_dir), name)
        loaded = tf.saved_model.load(str(path))
        metadata = json.loads((path / METADATA_FILE).read_text())
        return cls(name=name, version=int(path.name), metadata=metadata, loaded=loaded)

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Call ``serving_default``; TensorFlow's eager calls are thread-safe, so no lock here."""
        outputs = self.loaded.signatures["serving_default"](**{k: tf.convert_to_tensor(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}
