"""The thresholds auth takes from the embedder: never looser than those models.lock.json ships.

A model server reports its models' thresholds (GetModelInfo). One that was tampered with, or
misconfigured, could report a loose threshold and let every face match; auth therefore bounds each
reported threshold by the lock file's for the same model, name and version, and refuses models the
lock file does not know. The file ships with the auth image (/app/models.lock.json;
FACEAUTH_MODELS_LOCK_FILE).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from faceauth_auth.errors import ApiError
from faceauth_auth.faces import ModelInfo

log = logging.getLogger(__name__)

# GetModelInfo carries thresholds as float32: 0.9683 comes back as 0.96829998..., or a hair above.
FLOAT32_SLACK = 1e-6

Bounds = dict[tuple[str, int], dict[float, float]]  # (name, version) -> {FMR: largest threshold}


def load(path: Path) -> Bounds:
    models = json.loads(path.read_text())["models"]
    return {(name, int(entry["version"])): {float(point.removeprefix("fmr_")): float(distance)
                                            for point, distance in entry["thresholds"].items()}
            for name, entry in models.items() if "thresholds" in entry}


def bounded(info: ModelInfo, bounds: Bounds) -> ModelInfo:
    """``info`` with every threshold at most the lock file's; 503 for a model the lock file does not know."""
    locked = bounds.get((info.model.name, info.model.version))
    if locked is None:
        log.error("the embedder serves a model models.lock.json does not know",
                  extra={"model": info.model.label})
        raise ApiError(503, "service_unavailable", f"the embedder serves {info.model.label}, which this service "
                       "does not know; deploy matching versions", {"Retry-After": "30"})
    calibrated = info.calibrated or ((1e-3, info.default_threshold), (1e-4, info.strict_threshold))
    clamped = []
    for rate, reported in calibrated:
        if rate not in locked:
            continue  # an operating point the lock file does not vouch for is not used
        if reported > locked[rate] + FLOAT32_SLACK:
            log.warning("the embedder reported a threshold looser than models.lock.json's; using the lock file's",
                        extra={"model": info.model.label, "fmr": rate, "reported": reported, "locked": locked[rate]})
        clamped.append((rate, min(reported, locked[rate])))
    points = dict(clamped) or locked
    return ModelInfo(info.model, points.get(1e-3, locked[1e-3]), points.get(1e-4, locked[1e-4]),
                     tuple(sorted(points.items(), reverse=True)))
