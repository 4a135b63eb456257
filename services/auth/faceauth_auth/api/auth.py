"""Enrolment and the three face decisions: login (a token), verify (1:1) and identify (1:N)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from flask import Blueprint, Response, jsonify

from faceauth_auth import challenges, comparison, liveness, metrics, search
from faceauth_auth.admission import limited
from faceauth_auth.api.audit import record
from faceauth_auth.authn import current_client
from faceauth_auth.context import services
from faceauth_auth.errors import ApiError
from faceauth_auth.faces import Probe
from faceauth_auth.matching import Decision, decide
from faceauth_auth.repositories import attempts, users
from faceauth_auth.repositories.audit import Event
from faceauth_auth.uploads import read_image, read_upload

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


@bp.post("/auth/face-register")
@limited
def face_register() -> tuple[Response, int]:
    upload = read_upload()
    svc = services()
    probe = svc.pipeline.probe(upload.image)
    client = current_client()
    _judge_liveness(probe, liveness.Decision.ENROLMENT, upload.user_id)
    with svc.db.transaction() as session:
        user = users.find_or_create(session, client.application_id, upload.user_id)
        if users.template_count(session, user) >= svc.settings.max_templates_per_user:
            raise ApiError(409, "too_many_faces", f"a user may have at most {svc.settings.max_templates_per_user} "
                                                  "faces; delete one first")
        template = users.add_template(session, user, probe.info.model, probe.embedding, svc.db.vector_dimensions,
                                      svc.templates)
        record(session, Event.ENROLMENT, "success", user_id=user.external_id, detail=f"face {template.id}",
               liveness_score=probe.liveness_score)
    log.info("face enrolled", extra={"application": client.application, "face_id": str(template.id)})
    return jsonify({"user_id": user.external_id, "face_id": str(template.id),
                    "model": {"name": template.model_name, "version": template.model_version}}), 201


def _judge_liveness(probe: Probe, decision: liveness.Decision, user_id: str | None = None) -> None:
    """Apply the calling application's liveness policy, or the service default when it has none: the
    passive score, and the active challenge (checked whenever one is sent; required under ``challenge``
    for the decisions, not for enrolment).

    A refusal raises liveness.PresentationAttackError, which answers like the endpoint's mismatch. It is
    recorded here as a failed decision (audit event; at login also a failed attempt, which counts
    toward the user's lockout like a mismatch) before it propagates.
    """
    svc, client = services(), current_client()
    policy = liveness.canonical(client.liveness_policy or svc.settings.liveness_policy)
    try:
        liveness.judge(probe, policy, decision)
        response = challenges.read_response()
        required = policy == "challenge" and decision is not liveness.Decision.ENROLMENT
        if required or response is not None:
            challenges.check(svc, client, user_id, probe, decision, response)
    except liveness.PresentationAttackError as attack:
        log.info("presentation attack refused", extra={"application": client.application, "policy": policy,
                                                       "decision": str(decision), "reason": attack.reason})
        if decision is not liveness.Decision.ENROLMENT:
            with svc.db.transaction() as session:
                if decision is liveness.Decision.LOGIN and user_id is not None:
                    attempts.add(session, client.application_id, user_id, False, None)
                record(session, _DECISION_EVENTS[decision], "mismatch", user_id=user_id,
                       liveness_score=probe.liveness_score, detail=f"liveness: {attack.reason}"[:200])
        raise


_DECISION_EVENTS = {liveness.Decision.LOGIN: Event.LOGIN, liveness.Decision.VERIFY: Event.VERIFY,
                    liveness.Decision.IDENTIFY: Event.IDENTIFY}


def _decision_outcome(match: bool) -> str:
    return "match" if match else "mismatch"


def _login_outcome(error: Exception) -> str:
    if isinstance(error, liveness.PresentationAttackError):
        return "spoof"
    if isinstance(error, ApiError):
        if error.code == "face_mismatch":
            return "mismatch"
        if error.code == "too_many_attempts":
            return "locked"
        if error.code == liveness.SPOOF_DETECTED:
            return "spoof"
        if error.status == 422:
            return "no_face"
    return "error"


def _counted(login: Callable[[], Response]) -> Callable[[], Response]:
    """Count every login answer in faceauth_login_outcomes_total."""
    @functools.wraps(login)
    def counted() -> Response:
        try:
            response = login()
        except Exception as error:
            metrics.login_outcomes.labels(_login_outcome(error)).inc()
            raise
        metrics.login_outcomes.labels("success").inc()
        return response
    return counted


@bp.post("/auth/face-login")
@limited
@_counted
def face_login() -> Response:
    upload = read_upload()
    user_id = upload.user_id
    svc = services()
    client = current_client()
    with svc.db.transaction() as session:
        svc.lockout.check(session, client.application_id, user_id)
        plan = comparison.plan(session, client.application_id, user_id, svc.pipeline.served_models())
    # An unknown user, or one with no usable template, goes through the same steps and gets the same
    # answer as a mismatch.
    probe = svc.pipeline.probe(upload.image, plan.legacy_models if plan else ())
    _judge_liveness(probe, liveness.Decision.LOGIN, user_id)
    with svc.db.transaction() as session:
        decision = comparison.judge(session, client.application_id, plan, probe, client.operating_point)
        matched, distance = bool(decision and decision.match), decision.distance if decision else None
        attempts.add(session, client.application_id, user_id, matched, distance)
        record(session, Event.LOGIN, _decision_outcome(matched), user_id=user_id, distance=distance,
               liveness_score=probe.liveness_score)
        if matched and plan is not None:
            comparison.migrate(session, client.application_id, plan, probe)
    log.info("face login", extra={"application": client.application, "known_user": decision is not None,
                                  "match": matched, "distance": round(distance, 4) if distance is not None else None})
    if not matched:
        raise ApiError(401, "face_mismatch", "the face does not match")
    return jsonify({"access_token": svc.tokens.issue(user_id, client.application), "token_type": "Bearer",
                    "expires_in": svc.tokens.lifetime})


@bp.post("/auth/face-verify")
@limited
def face_verify() -> Response:
    upload = read_upload()
    svc = services()
    client = current_client()
    with svc.db.transaction() as session:
        plan = comparison.plan(session, client.application_id, upload.user_id, svc.pipeline.served_models())
    probe = svc.pipeline.probe(upload.image, plan.legacy_models if plan else ())
    _judge_liveness(probe, liveness.Decision.VERIFY, upload.user_id)
    with svc.db.transaction() as session:
        decision = comparison.judge(session, client.application_id, plan, probe, client.operating_point)
        if plan is None or decision is None:  # unknown, or no template a served model can compare with
            raise ApiError(404, "user_not_found", "no such user")
        record(session, Event.VERIFY, _decision_outcome(decision.match), user_id=upload.user_id,
               distance=decision.distance, liveness_score=probe.liveness_score)
        if decision.match:
            comparison.migrate(session, client.application_id, plan, probe)
    return jsonify({"match": decision.match, "confidence": decision.confidence})


@bp.post("/auth/face-identify")
@limited
def face_identify() -> Response:
    image = read_image()
    svc = services()
    client = current_client()
    served = svc.pipeline.served_models()
    probe = svc.pipeline.probe(image, served.legacy)
    _judge_liveness(probe, liveness.Decision.IDENTIFY)
    with svc.db.transaction() as session:
        # The primary model's gallery first; then, during a migration window, each legacy model's,
        # among the users not enrolled with the primary model yet (each user is compared once).
        decision: Decision | None = None
        user_id = None
        for info in (probe.info, *served.legacy):
            skip = None if info is probe.info else probe.info.model
            nearest = search.nearest(session, client.application_id, info.model, probe.by(info),
                                     svc.db.vector_dimensions, svc.settings.hnsw_ef_search, svc.templates, skip)
            if nearest is None:
                continue
            candidate = decide(nearest[1], info.threshold(client.operating_point))
            if decision is None or candidate.match:
                decision = candidate
            if candidate.match:
                user_id = nearest[0]
                break
        record(session, Event.IDENTIFY, _decision_outcome(user_id is not None), user_id=user_id,
               distance=decision.distance if decision else None, liveness_score=probe.liveness_score)
    return jsonify({"match": user_id is not None, "user_id": user_id,
                    "confidence": decision.confidence if decision else 0.0})
