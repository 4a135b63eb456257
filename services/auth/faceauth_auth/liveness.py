"""Per-application liveness policy: what a face's presentation-attack score does to enrolment and login.

``off`` ignores the score; ``report`` logs it and counts it in faceauth_liveness_score but lets the
decision stand; ``enforce`` refuses a face scoring below the detector model's threshold with
``spoof_detected``. The shipped models are weak on printed-photo attacks (docs/security.md), so
the service default is ``report``: ``enforce`` would turn away some live users while stopping few attacks.
"""

from __future__ import annotations

import logging

from faceauth_auth import metrics
from faceauth_auth.errors import ApiError
from faceauth_auth.faces import Probe

SPOOF_DETECTED = "spoof_detected"

log = logging.getLogger(__name__)


def judge(probe: Probe, policy: str, refusal_status: int) -> None:
    """Observe the probe's liveness score under ``policy``; under ``enforce`` raise for a likely attack.

    Under ``enforce`` a missing score (the detector runs no liveness model) fails closed with a 503,
    since letting every face through would silently turn the policy off.
    """
    if policy == "off":
        return
    score, threshold = probe.liveness_score, probe.liveness_threshold
    if score is None or threshold is None:
        if policy == "enforce":
            raise ApiError(503, "service_unavailable", "the detector runs no liveness model, which this "
                           "application's liveness policy requires", {"Retry-After": "30"})
        return
    verdict = "live" if score >= threshold else "spoof"
    metrics.liveness_score.labels(verdict, policy).observe(score)
    log.info("liveness", extra={"liveness_score": round(score, 4), "liveness_threshold": threshold,
                                "verdict": verdict, "policy": policy})
    if policy == "enforce" and verdict == "spoof":
        raise ApiError(refusal_status, SPOOF_DETECTED,
                       "the face looks like a presentation attack (a printed photo or a screen); "
                       "use the live camera")
