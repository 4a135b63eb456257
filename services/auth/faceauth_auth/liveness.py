"""Per-application liveness policy: what stands between a presentation attack and a face decision.

``off`` ignores the passive score; ``report`` logs it and counts it in faceauth_liveness_score but lets
the decision stand; ``enforce-passive`` (``enforce`` before the challenge existed, still accepted)
refuses a face scoring below the detector model's threshold; ``challenge`` reports the passive score
and requires an answered active challenge (faceauth_auth.challenges) at login, verify and identify.
The shipped passive models are weak on printed-photo attacks (docs/security.md), so the service
default is ``report``: ``enforce-passive`` would turn away some live users while stopping few attacks.

A refused decision raises ``PresentationAttackError``, which answers exactly like a mismatch of the same
endpoint (401 ``face_mismatch`` at login, ``match: false`` at verify and identify), so an attacker
cannot tell which check failed; the reason goes to the log and the audit event only. At enrolment,
which decides nothing, the refusal is a plain 422 ``spoof_detected``.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from flask import Response, jsonify

from faceauth_auth import metrics
from faceauth_auth.config import canonical_policy
from faceauth_auth.errors import ApiError, error_response
from faceauth_auth.faces import Probe

SPOOF_DETECTED = "spoof_detected"

log = logging.getLogger(__name__)


class Decision(StrEnum):
    """The endpoint a liveness verdict is for: it decides what a refusal looks like."""

    ENROLMENT = "enrolment"
    LOGIN = "login"
    VERIFY = "verify"
    IDENTIFY = "identify"


class PresentationAttackError(ApiError):
    """A face refused as a presentation attack (passive score, failed or missing challenge).

    Rendered by ``render`` exactly like the endpoint's own mismatch; ``reason`` is for the log and
    the audit trail, never for the answer. The decision handlers treat it as a failed decision.
    """

    def __init__(self, decision: Decision, reason: str) -> None:
        if decision is Decision.ENROLMENT:
            super().__init__(422, SPOOF_DETECTED, "the face looks like a presentation attack (a printed photo "
                             "or a screen), or the liveness challenge was not answered; use the live camera")
        elif decision is Decision.LOGIN:
            super().__init__(401, "face_mismatch", "the face does not match")  # as api.auth.face_login says it
        else:
            super().__init__(200, "no_match", "no match")
        self.decision = decision
        self.reason = reason


def render(attack: PresentationAttackError) -> Response:
    """The endpoint's mismatch answer (registered as the error handler of PresentationAttackError)."""
    if attack.decision is Decision.VERIFY:
        return jsonify({"match": False, "confidence": 0.0})
    if attack.decision is Decision.IDENTIFY:
        return jsonify({"match": False, "user_id": None, "confidence": 0.0})
    return error_response(attack.status, attack.code, attack.message, attack.headers)


def canonical(policy: str) -> str:
    return canonical_policy(policy)


def judge(probe: Probe, policy: str, decision: Decision) -> None:
    """Observe the probe's passive liveness score under ``policy``; under ``enforce-passive`` raise
    PresentationAttackError for a likely attack.

    Under ``enforce-passive`` a missing score (the detector runs no liveness model) fails closed with a
    503, since letting every face through would silently turn the policy off.
    """
    policy = canonical(policy)
    if policy == "off":
        return
    score, threshold = probe.liveness_score, probe.liveness_threshold
    if score is None or threshold is None:
        if policy == "enforce-passive":
            raise ApiError(503, "service_unavailable", "the detector runs no liveness model, which this "
                           "application's liveness policy requires", {"Retry-After": "30"})
        return
    verdict = "live" if score >= threshold else "spoof"
    metrics.liveness_score.labels(verdict, policy).observe(score)
    log.info("liveness", extra={"liveness_score": round(score, 4), "liveness_threshold": threshold,
                                "verdict": verdict, "policy": policy})
    if policy == "enforce-passive" and verdict == "spoof":
        raise PresentationAttackError(decision, f"passive liveness score {score:.3f} below {threshold:.3f}")
