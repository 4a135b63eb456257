"""The TensorFlow modules we export: each wraps a pretrained network with its own pre-processing.

Putting normalisation inside the SavedModel means a served model takes plain uint8 pixels, so
TensorFlow Serving, our gRPC services and the tests all feed it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from facemodels import blazeface, dlib_resnet, faceantispoofing, facemesh, liveness, mobilefacenet
from facemodels.tflite_graph import TfliteGraph


class BlazeFaceModule(tf.Module):
    """serving_default: uint8 images (N, 256, 256, 3) -> raw ``scores`` (N, 896), ``regressors`` (N, 896, 16)."""

    def __init__(self, network: Callable[..., Any]) -> None:
        super().__init__(name="blazeface")
        self._network = network

    @tf.function(input_signature=[tf.TensorSpec([None, blazeface.INPUT_SIZE, blazeface.INPUT_SIZE, 3], tf.uint8)])
    def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        scores_16, scores_8, boxes_16, boxes_8 = self._network(tf.cast(images, tf.float32) / 127.5 - 1.0)
        return {
            "scores": tf.concat([scores_16, scores_8], axis=1)[:, :, 0],
            "regressors": tf.concat([boxes_16, boxes_8], axis=1),
        }


class FaceMeshModule(tf.Module):
    """serving_default: uint8 crops (N, 192, 192, 3) -> ``mesh`` (N, 468, 3) in crop px, ``face_probability`` (N,)."""

    def __init__(self, network: Callable[..., Any]) -> None:
        super().__init__(name="facemesh")
        self._network = network

    @tf.function(input_signature=[tf.TensorSpec([None, facemesh.INPUT_SIZE, facemesh.INPUT_SIZE, 3], tf.uint8)])
    def serve(self, crops: tf.Tensor) -> dict[str, tf.Tensor]:
        mesh, face_flag = self._network(tf.cast(crops, tf.float32) / 255.0)
        return {"mesh": tf.reshape(mesh, [-1, 468, 3]), "face_probability": face_flag[:, 0]}



class LivenessModule(tf.Module):
    """serving_default: uint8 FaceMesh crops (N, 192, 192, 3) -> ``live_score`` (N,), higher = more likely live.

    Takes the crop the detector already cut for FaceMesh, as Human feeds its face tensor: RGB
    scaled to [0, 1], resized bilinearly to the network's own input; the score is output column 0.
    """

    def __init__(self, network: Callable[..., Any], input_size: int) -> None:
        super().__init__(name="liveness")
        self._network = network
        self._input_size = input_size

    @tf.function(input_signature=[tf.TensorSpec([None, liveness.CROP_SIZE, liveness.CROP_SIZE, 3], tf.uint8)])
    def serve(self, crops: tf.Tensor) -> dict[str, tf.Tensor]:
        # TFJS's resizeBilinear defaults: no corner alignment, no half-pixel centres.
        pixels = tf.raw_ops.ResizeBilinear(images=tf.cast(crops, tf.float32) / 255.0,
                                           size=[self._input_size, self._input_size],
                                           align_corners=False, half_pixel_centers=False)
        (scores,) = self._network(pixels)
        return {"live_score": scores[:, 0]}

class FaceAntiSpoofing(tf.Module):
    """Maps (N, 256, 256, 3) RGB crops in 0..255 to the package's spoof score (N,), higher = more likely an attack."""

    def __init__(self, graph: TfliteGraph) -> None:
        super().__init__(name="faceantispoofing")
        if graph.input_names != ["input"] or graph.output_names != ["Identity", "Identity_1"]:
            raise ValueError(f"not the FaceAntiSpoofing graph: {graph.input_names} -> {graph.output_names}")
        self._graph = graph
        self._indices = sorted(graph.weights)
        self._variables = [tf.Variable(graph.weights[i], trainable=False, name=f"tensor_{i}") for i in self._indices]

    def __call__(self, crops: tf.Tensor) -> tf.Tensor:
        leaves, mask = self._graph(crops / 255.0, weights=dict(zip(self._indices, self._variables, strict=True)))
        return tf.reduce_sum(tf.abs(leaves) * mask, axis=1)


class FaceAntiSpoofingModule(tf.Module):
    """serving_default: uint8 crops (N, 256, 256, 3) -> ``live_score`` (N,) in (0, 1], higher = more likely live.

    The crops are the package caller's (faceantispoofing.crop_matrix): the square face box, no margin.
    ``live_score`` is 0.2 / (0.2 + the package's spoof score), so 0.5 is the package's own threshold.
    """

    def __init__(self, network: tf.Module) -> None:
        super().__init__(name="faceantispoofing")
        self._network = network

    @tf.function(input_signature=[tf.TensorSpec([None, faceantispoofing.INPUT_SIZE, faceantispoofing.INPUT_SIZE, 3],
                                                tf.uint8)])
    def serve(self, crops: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"live_score": faceantispoofing.live_score(self._network(tf.cast(crops, tf.float32)))}


def faceantispoofing_scorer(tflite_path: Any) -> FaceAntiSpoofingModule:
    return FaceAntiSpoofingModule(FaceAntiSpoofing(TfliteGraph(tflite_path)))


# Up to this many network inputs go through the XLA-compiled path: on CPU it is ~1.6x faster for
# tiny batches and slower for large ones, where oneDNN's batched kernels win (docs/performance.md).
XLA_MAX_BATCH = 4


class EmbedderModule(tf.Module):
    """serving_default: uint8 aligned chips (N, S, S, 3) -> L2-normalised ``embeddings`` (N, D).

    With ``mirror`` the chip and its mirror image are embedded together and averaged (test-time
    augmentation): one batch of 2N through the network, measured to raise TAR at low FMR.
    """

    def __init__(self, network: tf.Module, size: int, mirror: bool) -> None:
        super().__init__(name="embedder")
        self._network = network
        self._mirror = mirror
        self._compiled = tf.function(network.__call__, jit_compile=True, reduce_retracing=True)
        self.serve = tf.function(self._embed, input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)])

    def _features(self, pixels: tf.Tensor) -> tf.Tensor:
        return tf.cond(tf.shape(pixels)[0] <= XLA_MAX_BATCH,
                       lambda: self._compiled(pixels), lambda: self._network(pixels))

    def _embed(self, chips: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = tf.cast(chips, tf.float32)
        if self._mirror:
            count = tf.shape(pixels)[0]
            both = self._features(tf.concat([pixels, tf.reverse(pixels, axis=[2])], axis=0))
            vectors = both[:count] + both[count:]
        else:
            vectors = self._features(pixels)
        return {"embeddings": tf.math.l2_normalize(vectors, axis=1)}


def dlib_embedder(manifest_path: Any, mirror: bool) -> EmbedderModule:
    network = dlib_resnet.DlibResNet(dlib_resnet.load_weights(manifest_path))
    return EmbedderModule(network, dlib_resnet.INPUT_SIZE, mirror)


def mobilefacenet_embedder(tflite_path: Any, mirror: bool) -> EmbedderModule:
    network = mobilefacenet.MobileFaceNet(TfliteGraph(tflite_path))
    return EmbedderModule(network, mobilefacenet.INPUT_SIZE, mirror)
