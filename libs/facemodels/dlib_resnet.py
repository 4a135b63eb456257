"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1``) rebuilt in TensorFlow.

face-api ships the weights (uint8-quantised) and describes the architecture in its JS source:
29 convolutions on a 150x150 RGB chip, each followed by a per-channel affine "scale" layer that we
fold into the convolution, and a 128-d linear projection of the global average.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from facemodels.tfjs_graph import read_weights

INPUT_SIZE = 150
MEAN_RGB = (122.782, 117.001, 104.298)
_BLOCKS = (
    ("conv32_1", False), ("conv32_2", False), ("conv32_3", False),
    ("conv64_down", True), ("conv64_1", False), ("conv64_2", False), ("conv64_3", False),
    ("conv128_down", True), ("conv128_1", False), ("conv128_2", False),
    ("conv256_down", True), ("conv256_1", False), ("conv256_2", False), ("conv256_down_out", True),
)


def load_weights(manifest_path: Path) -> dict[str, np.ndarray]:
    """Read face-api's weights manifest and fold every scale layer into its convolution."""
    import json

    raw = read_weights({"weightsManifest": json.loads(manifest_path.read_text())}, manifest_path.parent)
    folded: dict[str, np.ndarray] = {"fc": raw["fc"]}
    prefixes = {name.rsplit("/conv/", 1)[0] for name in raw if "/conv/filters" in name}
    for prefix in prefixes:
        scale, shift = raw[f"{prefix}/scale/weights"], raw[f"{prefix}/scale/biases"]
        folded[f"{prefix}/filters"] = raw[f"{prefix}/conv/filters"] * scale
        folded[f"{prefix}/bias"] = raw[f"{prefix}/conv/bias"] * scale + shift
    return folded


class DlibResNet(tf.Module):
    """Maps (N, 150, 150, 3) RGB chips in 0..255 to unnormalised 128-d descriptors."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        super().__init__(name="dlib_resnet")
        self._w = {k: tf.Variable(v, trainable=False, name=k.replace("/", "_")) for k, v in weights.items()}

    def _conv(self, x: tf.Tensor, prefix: str, stride: int, relu: bool) -> tf.Tensor:
        padding = "VALID" if stride == 2 else "SAME"
        out = tf.nn.conv2d(x, self._w[f"{prefix}/filters"], stride, padding) + self._w[f"{prefix}/bias"]
        return tf.nn.relu(out) if relu else out

    def _residual(self, x: tf.Tensor, prefix: str, down: bool) -> tf.Tensor:
        out = self._conv(x, f"{prefix}/conv1", 2 if down else 1, relu=True)
        out = self._conv(out, f"{prefix}/conv2", 1, relu=False)
        if down:
            # dlib's down-sampling blocks: average-pool the shortcut, zero-pad its missing channels,
            # and zero-pad the branch bottom/right when the valid convolution came out one smaller.
            shortcut = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            extra = out.shape[-1] - shortcut.shape[-1]
            if extra:
                shortcut = tf.pad(shortcut, [[0, 0], [0, 0], [0, 0], [0, extra]])
            dh = shortcut.shape[1] - out.shape[1]
            dw = shortcut.shape[2] - out.shape[2]
            if dh or dw:
                out = tf.pad(out, [[0, 0], [0, dh], [0, dw], [0, 0]])
            x = shortcut
        return tf.nn.relu(out + x)

    def __call__(self, chips: tf.Tensor) -> tf.Tensor:
        x = (chips - tf.constant(MEAN_RGB)) / 255.0
        x = self._conv(x, "conv32_down", 2, relu=True)
        x = tf.nn.max_pool2d(x, 3, 2, "VALID")
        for prefix, down in _BLOCKS:
            x = self._residual(x, prefix, down)
        return tf.matmul(tf.reduce_mean(x, axis=[1, 2]), self._w["fc"])
