"""Account guards: one row per user id of an application, locked while a request spends its budget."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from faceauth_auth.models import AccountGuard


def locked(session: Session, application_id: int, user_id: str) -> AccountGuard:
    """The user id's guard, created if missing, locked (SELECT ... FOR UPDATE) until the transaction ends:
    concurrent requests for the same user id take their turns here."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(AccountGuard).values(application_id=application_id, external_user_id=user_id, failures=0,
                                                lockouts=0, updated_at=sa.func.now())
                    .on_conflict_do_nothing(index_elements=["application_id", "external_user_id"]))
    return session.scalars(sa.select(AccountGuard).where(AccountGuard.application_id == application_id,
                                                         AccountGuard.external_user_id == user_id)
                           .with_for_update().execution_options(populate_existing=True)).one()


def find(session: Session, application_id: int, user_id: str) -> AccountGuard | None:
    return session.scalar(sa.select(AccountGuard).where(AccountGuard.application_id == application_id,
                                                        AccountGuard.external_user_id == user_id))


def delete_for_user(session: Session, application_id: int, user_id: str) -> None:
    session.execute(sa.delete(AccountGuard).where(AccountGuard.application_id == application_id,
                                                  AccountGuard.external_user_id == user_id))


def delete_idle_before(session: Session, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` guards untouched since ``cutoff`` that hold no lock; how many were deleted."""
    idle = (sa.select(AccountGuard.id).where(AccountGuard.updated_at < cutoff,
                                             AccountGuard.locked_permanently_at.is_(None),
                                             sa.or_(AccountGuard.locked_until.is_(None),
                                                    AccountGuard.locked_until < cutoff))
            .order_by(AccountGuard.updated_at).limit(limit))
    result = session.execute(sa.delete(AccountGuard).where(AccountGuard.id.in_(idle)))
    return int(result.rowcount)  # type: ignore[attr-defined]
