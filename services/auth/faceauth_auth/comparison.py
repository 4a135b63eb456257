"""Which of a user's templates a face is compared with, and the model migration a match brings.

Embeddings of different models are never compared. A user is judged by the primary model when they
have a template of it; otherwise, during a migration window, by the first legacy model still served
that they have templates of. A match under a legacy model enrols the same photo's embedding under
the primary model (audited), so users move to the new model by using the product; once a legacy
model is retired, a user who never came back has no usable template and is answered like an
unknown user (no reply tells that the user exists).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from faceauth_auth import metrics
from faceauth_auth.api.audit import record
from faceauth_auth.context import services
from faceauth_auth.faces import ModelInfo, Probe, ServedModels
from faceauth_auth.matching import Decision, decide, nearest_distance
from faceauth_auth.repositories import users
from faceauth_auth.repositories.audit import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Comparison:
    """The model a user's face is judged by; ``migrating`` when it is a legacy one."""

    user_id: str
    info: ModelInfo
    migrating: bool

    @property
    def legacy_models(self) -> tuple[ModelInfo, ...]:
        """What the probe must be embedded with besides the primary model."""
        return (self.info,) if self.migrating else ()


def plan(session: Session, application_id: int, user_id: str, served: ServedModels) -> Comparison | None:
    """How this user will be judged, or None for an unknown user or one with no usable template."""
    user = users.find(session, application_id, user_id)
    if user is None:
        return None
    enrolled = users.template_models(session, user)
    for info in (served.primary, *served.legacy):
        if info.model in enrolled:
            return Comparison(user.external_id, info, migrating=info is not served.primary)
    return None


def judge(session: Session, application_id: int, comparison: Comparison | None, probe: Probe,
          operating_point: str) -> Decision | None:
    """The decision for the probe against the user's templates of the planned model; None when
    there are none (unknown user, or templates deleted since the plan)."""
    if comparison is None:
        return None
    user = users.find(session, application_id, comparison.user_id)
    if user is None:
        return None
    templates = users.embeddings(session, user, comparison.info.model, services().templates)
    if len(templates) == 0:
        return None
    # The nearest of k templates is k chances to match falsely: the threshold holds the FMR over all k.
    threshold = comparison.info.threshold(operating_point, comparisons=len(templates))
    return decide(nearest_distance(probe.by(comparison.info), templates)[1], threshold)


def migrate(session: Session, application_id: int, comparison: Comparison, probe: Probe) -> None:
    """After a match under a legacy model, enrol the probe's primary-model embedding for the user,
    unless a concurrent request already did."""
    if not comparison.migrating:
        return
    svc = services()
    user = users.find_or_create(session, application_id, comparison.user_id)  # locks the user row
    if probe.info.model in users.template_models(session, user):
        return
    template = users.add_template(session, user, probe.info.model, probe.embedding, svc.db.vector_dimensions,
                                  svc.templates)
    record(session, Event.ENROLMENT, "success", user_id=user.external_id, liveness_score=probe.liveness_score,
           detail=f"face {template.id}: automatic, migrated from {comparison.info.model.label}")
    metrics.template_migrations.labels(comparison.info.model.label, probe.info.model.label).inc()
    log.info("template migrated", extra={"face_id": str(template.id), "from_model": comparison.info.model.label,
                                         "to_model": probe.info.model.label})
