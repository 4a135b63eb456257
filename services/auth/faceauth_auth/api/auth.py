"""Enrolment and the three face decisions: login (a token), verify (1:1) and identify (1:N)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy.orm import Session

from faceauth_auth import challenges, comparison, liveness, metrics, search
from faceauth_auth.admission import limited
from faceauth_auth.api.audit import record
from faceauth_auth.authn import current_client
from faceauth_auth.context import services
from faceauth_auth.errors import ApiError
from faceauth_auth.faces import Probe
from faceauth_auth.matching import Decision, decide
from faceauth_auth.repositories import users
from faceauth_auth.repositories.audit import Event
from faceauth_auth.uploads import read_image, read_upload

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


# Where a client proves, when adding a face to a user who has one, that the user is present: a token
# the user got from a face login (within its lifetime) for this application.
PROOF_HEADER = "X-Faceauth-User-Token"


@bp.post("/auth/face-register")
@limited
def face_register() -> tuple[Response, int]:
    upload = read_upload()
    svc = services()
    client = current_client()
    with svc.db.transaction() as session:
        plan = comparison.plan(session, client.application_id, upload.user_id, svc.pipeline.served_models())
    probe = svc.pipeline.probe(upload.image, plan.legacy_models if plan else ())
    _judge_liveness(probe, liveness.Decision.ENROLMENT, upload.user_id)
    with svc.db.transaction() as session:
        if plan is not None:
            _require_proof(session, plan, probe, upload.user_id)
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


def _require_proof(session: Session, plan: comparison.Comparison, probe: Probe, user_id: str) -> None:
    """A face is added to a user who already has a usable one only if the new face matches an enrolled one,
    or the request carries a fresh token of that user (so an enrol key alone cannot plant a second face)."""
    client, svc = current_client(), services()
    token = request.headers.get(PROOF_HEADER, "").strip()
    if token:
        try:
            claims = svc.tokens.verify(token, client.application)
        except jwt.PyJWTError:
            claims = {}
        if claims.get("sub") == user_id:
            return
    else:
        decision = comparison.judge(session, client.application_id, plan, probe, client.operating_point)
        if decision is not None and decision.match:
            return
    record(session, Event.ENROLMENT, "refused", user_id=user_id, detail="no proof of the user's presence")
    session.commit()  # the refusal stays in the audit log
    raise ApiError(403, "proof_required", "this user already has a face: the new face must match it, or send a "
                   f"token of this user from a face login in {PROOF_HEADER}")


def _judge_liveness(probe: Probe, decision: liveness.Decision, user_id: str | None = None) -> None:
    """Apply the calling application's liveness policy, or the service default when it has none: the
    passive score, and the active challenge (checked whenever one is sent; required under ``challenge``
    for the decisions, not for enrolment). A refusal raises liveness.PresentationAttackError, which
    answers like the endpoint's mismatch; the decision handlers record it as a failed decision."""
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
        raise


def _decision_outcome(match: bool) -> str:
    return "match" if match else "mismatch"


def _login_outcome(error: Exception) -> str:
    if isinstance(error, liveness.PresentationAttackError):
        return "spoof"
    if isinstance(error, ApiError):
        if error.code == "face_mismatch":
            return str(g.get("login_outcome", "mismatch"))
        if error.code in ("too_many_attempts", "account_locked", "login_suspended"):
            return "locked"
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


@dataclass(frozen=True)
class _Decided:
    """One face decision for a user id: None for an unknown user, one with no usable face, or a face the
    liveness policy refused (``spoof``), all answered like a mismatch."""

    decision: Decision | None
    spoof: bool

    @property
    def match(self) -> bool:
        return bool(self.decision and self.decision.match) and not self.spoof


_DECISION_EVENTS = {liveness.Decision.LOGIN: Event.LOGIN, liveness.Decision.VERIFY: Event.VERIFY}


def _decide_for(user_id: str, image: bytes, kind: liveness.Decision) -> _Decided:
    """A face login or verify decision, spent from the user id's attempt budget (faceauth_auth.lockout) and
    the application's failure-rate breaker; every decision is recorded, audited and counted alike."""
    svc, client = services(), current_client()
    with svc.db.transaction() as session:
        svc.breaker.check(session, client.application_id, client.application)
        reservation = svc.lockout.reserve(session, client.application_id, user_id)
        plan = comparison.plan(session, client.application_id, user_id, svc.pipeline.served_models())
    try:
        # An unknown user, or one with no usable template, goes through the same steps as any other.
        probe = svc.pipeline.probe(image, plan.legacy_models if plan else ())
        refusal = _presentation_attack(probe, kind, user_id)
    except BaseException:
        with svc.db.transaction() as session:
            svc.lockout.release(session, reservation)
        raise
    spoof = refusal is not None
    with svc.db.transaction() as session:
        decision = None if spoof else comparison.judge(session, client.application_id, plan, probe,
                                                       client.operating_point)
        decided = _Decided(decision, spoof)
        distance = decision.distance if decision else None
        lock = svc.lockout.decide(session, client.application_id, user_id, reservation, decided.match, distance)
        record(session, _DECISION_EVENTS[kind], "spoof" if spoof else _decision_outcome(decided.match),
               user_id=user_id, distance=distance, liveness_score=probe.liveness_score,
               detail=f"liveness: {refusal}"[:200] if refusal else None)
        if lock is not None:
            record(session, Event.ACCOUNT_LOCKED, "locked", user_id=user_id, detail=lock.detail)
        if decided.match and plan is not None:
            comparison.migrate(session, client.application_id, plan, probe)
    log.info("face decision", extra={"application": client.application, "event": str(kind),
                                     "known_user": decision is not None, "match": decided.match, "spoof": spoof,
                                     "distance": round(distance, 4) if distance is not None else None})
    return decided


def _presentation_attack(probe: Probe, kind: liveness.Decision, user_id: str) -> str | None:
    """Why the liveness policy refuses the face, or None: at login and verify a refusal is a failed
    decision, answered like a mismatch, so an attacker learns nothing from it and spends the budget."""
    try:
        _judge_liveness(probe, kind, user_id)
    except liveness.PresentationAttackError as attack:
        return attack.reason
    return None


@bp.post("/auth/face-login")
@limited
@_counted
def face_login() -> Response:
    upload = read_upload()
    decided = _decide_for(upload.user_id, upload.image, liveness.Decision.LOGIN)
    if not decided.match:
        g.login_outcome = "spoof" if decided.spoof else "mismatch"
        raise ApiError(401, "face_mismatch", "the face does not match")
    svc = services()
    return jsonify({"access_token": svc.tokens.issue(upload.user_id, current_client().application),
                    "token_type": "Bearer", "expires_in": svc.tokens.lifetime})


@bp.post("/auth/face-verify")
@limited
def face_verify() -> Response:
    upload = read_upload()
    decided = _decide_for(upload.user_id, upload.image, liveness.Decision.VERIFY)
    if decided.decision is None and not decided.spoof:  # unknown, or no face a served model can compare with
        raise ApiError(404, "user_not_found", "no such user")
    return jsonify({"match": decided.match,
                    "confidence": decided.decision.confidence if decided.decision and decided.match else 0.0})


@bp.post("/auth/face-identify")
@limited
def face_identify() -> Response:
    image = read_image()
    svc = services()
    client = current_client()
    served = svc.pipeline.served_models()
    probe = svc.pipeline.probe(image, served.legacy)
    try:
        _judge_liveness(probe, liveness.Decision.IDENTIFY)
    except liveness.PresentationAttackError as attack:  # answered like no match (liveness.render), audited
        with svc.db.transaction() as session:
            record(session, Event.IDENTIFY, "spoof", liveness_score=probe.liveness_score,
                   detail=f"liveness: {attack.reason}"[:200])
        raise
    with svc.db.transaction() as session:
        # The primary model's gallery first; then, during a migration window, each legacy model's,
        # among the users not enrolled with the primary model yet (each user is compared once).
        decision: Decision | None = None
        user_id = None
        # A gallery of N templates is N chances to match falsely: strict by default, split over N.
        operating_point = "strict" if "strict" in (client.operating_point,
                                                   svc.settings.identify_operating_point) else "default"
        for info in (probe.info, *served.legacy):
            skip = None if info is probe.info else probe.info.model
            nearest = search.nearest(session, client.application_id, info.model, probe.by(info),
                                     svc.db.vector_dimensions, svc.settings.hnsw_ef_search, svc.templates, skip)
            if nearest is None:
                continue
            candidate = decide(nearest.distance, info.threshold(operating_point, comparisons=nearest.gallery))
            if decision is None or candidate.match:
                decision = candidate
            if candidate.match:
                user_id = nearest.user_id
                break
        record(session, Event.IDENTIFY, _decision_outcome(user_id is not None), user_id=user_id,
               distance=decision.distance if decision else None, liveness_score=probe.liveness_score)
    return jsonify({"match": user_id is not None, "user_id": user_id,
                    "confidence": decision.confidence if decision else 0.0})
