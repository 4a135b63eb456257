"""The auth service's decision rules on their own: lockout lengths, confidence, face selection, gRPC errors."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest

from faceauth.grpc.status import ERROR_CODE_KEY
from faceauth_auth import modelbounds
from faceauth_auth.config import LOCK_FILE
from faceauth_auth.downstream import to_api_error
from faceauth_auth.errors import ApiError
from faceauth_auth.faces import DetectedFace, EmbeddingModel, ModelInfo, Quality
from faceauth_auth.lockout import LockoutPolicy
from faceauth_auth.matching import Decision, nearest_distance
from faceauth_auth.quality import QualityPolicy, single_usable


def test_each_lockout_lasts_twice_the_one_before_up_to_the_longest() -> None:
    policy = LockoutPolicy(max_failures=3, window=900, max_wait=3000)
    assert [policy.lock_seconds(n) for n in (1, 2, 3, 4)] == [900, 1800, 3000, 3000]


def test_confidence_is_one_half_at_the_threshold_and_coarse() -> None:
    assert Decision(True, 0.0, 0.38).confidence == 1.0
    assert Decision(False, 0.38, 0.38).confidence == 0.5
    assert Decision(False, 1.2, 0.38).confidence == 0.0
    # Steps of 0.1: distances that differ inside a step give the same confidence.
    assert Decision(True, 0.10, 1.0).confidence == Decision(True, 0.18, 1.0).confidence == 0.9
    index, distance = nearest_distance(np.array([1.0, 0.0]), np.array([[0.0, 1.0], [0.6, 0.8]]))
    assert index == 1 and distance == pytest.approx(np.sqrt(0.16 + 0.64))


def _face(size: float, reasons: tuple[str, ...] = ()) -> DetectedFace:
    return DetectedFace((0, 0, size, size), 0.9, np.zeros((5, 2), np.float32), 0.9, 0.0, Quality(50.0, reasons))


@pytest.mark.parametrize(("faces", "code"), [
    ([], "no_face"),
    ([_face(30, ("face_too_small",))], "face_too_small"),
    ([_face(100), _face(90)], "multiple_faces"),
    ([_face(100, ("face_too_blurry",)), _face(20, ("face_too_small",))], "face_too_blurry"),
])
def test_exactly_one_usable_face(faces: list[DetectedFace], code: str) -> None:
    with pytest.raises(ApiError) as refused:
        single_usable(faces)
    assert (refused.value.status, refused.value.code) == (422, code)


def test_a_small_face_in_the_background_does_not_count() -> None:
    user = _face(120)
    assert single_usable([_face(25, ("face_too_small",)), user]) is user


def test_quality_policy_refuses_small_and_blurred_faces() -> None:
    policy = QualityPolicy(min_face_size=60, min_sharpness=15)
    box = (50.0, 50.0, 150.0, 150.0)
    assert policy.assess(box, 9.0).reasons == ("face_too_blurry",)
    assert policy.assess((0.0, 0.0, 40.0, 40.0), 120.0).reasons == ("face_too_small",)
    assert policy.assess(box, 120.0).usable
    # A detector older than the sharpness field (a rolling upgrade) measured nothing: no blur refusal.
    assert policy.assess(box, None).usable


class _Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, reason: str | None = None) -> None:
        self._code, self._reason = code, reason

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "details"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((ERROR_CODE_KEY, self._reason),) if self._reason else ()


@pytest.mark.parametrize(("error", "status", "code"), [
    (_Failed(grpc.StatusCode.UNAVAILABLE), 503, "service_unavailable"),
    (_Failed(grpc.StatusCode.DEADLINE_EXCEEDED), 503, "service_unavailable"),
    (_Failed(grpc.StatusCode.RESOURCE_EXHAUSTED), 503, "service_unavailable"),
    (_Failed(grpc.StatusCode.INVALID_ARGUMENT, "corrupt_image"), 400, "corrupt_image"),
    (_Failed(grpc.StatusCode.INVALID_ARGUMENT, "image_too_large"), 422, "image_too_large"),
    (_Failed(grpc.StatusCode.INTERNAL), 502, "downstream_error"),
])
def test_grpc_failures_become_http_answers(error: grpc.RpcError, status: int, code: str) -> None:
    answer = to_api_error("detector", error)
    assert (answer.status, answer.code) == (status, code)


def test_thresholds_hold_the_fmr_over_several_comparisons() -> None:
    """Matching the nearest of k templates (or of a gallery of N) is k chances to match falsely, so the
    threshold is the one calibrated for FMR / k: log-linear between calibrated points, stricter beyond them."""
    info = ModelInfo(EmbeddingModel("m", 1, 4), 1.0, 0.9, ((1e-3, 1.0), (1e-4, 0.9), (1e-5, 0.8), (1e-6, 0.7)))
    assert info.threshold("default") == 1.0 and info.threshold("strict") == 0.9
    assert info.threshold("default", comparisons=10) == pytest.approx(0.9)
    assert info.threshold("default", comparisons=5) == pytest.approx(1.0 - 0.1 * math.log10(5))
    assert info.threshold("strict", comparisons=100) == pytest.approx(0.7)
    assert info.threshold("strict", comparisons=1000) == pytest.approx(0.6)  # extrapolated: stricter still
    assert info.threshold_at(1e-2) == 1.0  # never looser than the loosest calibrated point
    two_points = ModelInfo(EmbeddingModel("m", 1, 4), 1.0, 0.9)
    assert two_points.threshold("default", comparisons=10) == pytest.approx(0.9)


def test_thresholds_reported_by_the_embedder_are_bounded_by_the_lock_file() -> None:
    bounds = {("m", 1): {1e-3: 1.0, 1e-4: 0.9}}
    loose = ModelInfo(EmbeddingModel("m", 1, 4), 1.9, 0.5, ((1e-3, 1.9), (1e-4, 0.5), (1e-5, 0.4)))
    held = modelbounds.bounded(loose, bounds)
    # The loose 1e-3 threshold is the lock file's, the stricter one stays, the unvouched 1e-5 is dropped.
    assert (held.default_threshold, held.strict_threshold, held.calibrated) == (1.0, 0.5, ((1e-3, 1.0), (1e-4, 0.5)))
    with pytest.raises(ApiError) as unknown:
        modelbounds.bounded(ModelInfo(EmbeddingModel("other", 1, 4), 1.0, 0.9), bounds)
    assert unknown.value.status == 503


def test_every_locked_embedder_has_thresholds_auth_can_bound() -> None:
    bounds = modelbounds.load(LOCK_FILE)
    assert {("mobilefacenet", 1), ("dlib-resnet", 1)} <= set(bounds)
    assert all({1e-3, 1e-4} <= set(points) for points in bounds.values())
