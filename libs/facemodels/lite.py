"""The TFLite form of a model: written beside its SavedModel at build time, run through XNNPACK.

On CPUs XNNPACK runs these networks 2-5x faster than TensorFlow's kernels run the SavedModel
(docs/performance.md). Each model's lock entry picks its form: ``float32`` (same arithmetic as
the SavedModel; as fast as int8 for the small detector networks) or ``int8-dynamic-range``
(weights int8, activations quantised on the fly per row: 2-3x faster again for the embedder's
ResNet, embeddings within 0.02 of the float ones; docs/models.md). GPUs keep the SavedModel:
XNNPACK is a CPU library.

An interpreter has fixed input shapes and resizing one costs ~20 ms, so a batch is cut into
power-of-two chunks and each chunk size gets its own interpreter, created at first use (the
services' warm-up) and used by one thread at a time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

LITE_FILE = "model.tflite"
SIGNATURE = "serving_default"
# Largest chunk; bigger batches gain nothing on CPU and would only hold more activation memory.
MAX_CHUNK = 16
# What models.lock.json's ``tflite`` field may ask for.
FORMATS = ("float32", "int8-dynamic-range")


def convert(module: Any, form: str) -> bytes:
    """The TFLite flatbuffer of a model module's ``serve`` function (savedmodels.py) in ``form``."""
    import tensorflow as tf  # build time only; the serving path below needs just the LiteRT runtime

    if form not in FORMATS:
        raise ValueError(f"tflite form must be one of {FORMATS}, not {form!r}")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    if form == "int8-dynamic-range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return bytes(converter.convert())


def chunk_sizes(count: int) -> list[int]:
    """``count`` as a sum of powers of two, largest first, none above MAX_CHUNK (37 -> 16, 16, 4, 1)."""
    sizes = [MAX_CHUNK] * (count // MAX_CHUNK)
    rest = count % MAX_CHUNK
    size = MAX_CHUNK
    while rest:
        size //= 2
        if rest >= size:
            sizes.append(size)
            rest -= size
    return sizes


class _Chunk:
    """One interpreter for one batch size; a lock, because an interpreter is not thread-safe."""

    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._runner = Interpreter(model_path=str(path), num_threads=threads).get_signature_runner(SIGNATURE)
        self._lock = threading.Lock()
        self.outputs: dict[str, dict[str, Any]] = self._runner.get_output_details()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            return self._runner(**inputs)  # the runner returns copies, safe to keep after the lock


class LiteRunner:
    """Calls a model's TFLite form with a batch of any size, like the SavedModel's signature."""

    def __init__(self, path: Path, threads: int) -> None:
        self._path = path
        self._threads = threads
        self._chunks: dict[int, _Chunk] = {}
        self._lock = threading.Lock()
        self._outputs = self._chunk(1).outputs

    def _chunk(self, size: int) -> _Chunk:
        with self._lock:
            if size not in self._chunks:
                self._chunks[size] = _Chunk(self._path, self._threads)
            return self._chunks[size]

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        count = len(next(iter(inputs.values())))
        if count == 0:
            return {name: np.zeros((0, *detail["shape_signature"][1:]), detail["dtype"])
                    for name, detail in self._outputs.items()}
        parts: list[dict[str, Any]] = []
        start = 0
        for size in chunk_sizes(count):
            parts.append(self._chunk(size)({name: value[start:start + size] for name, value in inputs.items()}))
            start += size
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
