"""Face detection for clients: where the faces are and whether each is good enough to enrol."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from faceauth_auth.admission import limited
from faceauth_auth.context import services
from faceauth_auth.faces import LANDMARK_NAMES, DetectedFace
from faceauth_auth.uploads import read_image

bp = Blueprint("faces", __name__)


def _face(face: DetectedFace) -> dict[str, Any]:
    x_min, y_min, x_max, y_max = face.box
    return {
        "box": {"x_min": x_min, "y_min": y_min, "x_max": x_max, "y_max": y_max},
        "score": face.score,
        "landmarks": {name: {"x": float(x), "y": float(y)} for name, (x, y) in zip(LANDMARK_NAMES, face.landmarks,
                                                                                   strict=True)},
        "landmark_score": face.landmark_score,
        "yaw_degrees": face.yaw_degrees,
        "quality": {"usable": face.quality.usable, "reasons": list(face.quality.reasons),
                    "sharpness": None if face.quality.sharpness is None else round(face.quality.sharpness, 2)},
    }


@bp.post("/v1/faces/detect")
@limited
def detect() -> Response:
    detection = services().pipeline.detect(read_image())
    return jsonify({"image": {"width": detection.width, "height": detection.height},
                    "faces": [_face(face) for face in detection.faces]})
