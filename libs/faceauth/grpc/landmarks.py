"""Landmarks between numpy arrays (what the models use) and protobuf (what travels)."""

from __future__ import annotations

import numpy as np

from faceauth.v1 import common_pb2


def to_message(points: np.ndarray) -> common_pb2.Landmarks:
    """An (N, 2) array of x, y pixels as a Landmarks message."""
    return common_pb2.Landmarks(points=[common_pb2.Point(x=float(x), y=float(y)) for x, y in points])


def to_array(message: common_pb2.Landmarks) -> np.ndarray:
    """A Landmarks message as an (N, 2) float32 array; validating N and the values is the caller's job."""
    return np.array([(point.x, point.y) for point in message.points], dtype=np.float32).reshape(-1, 2)
