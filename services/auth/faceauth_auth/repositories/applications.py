"""Applications and their API keys."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, contains_eager

from faceauth_auth.models import ApiKey, Application


def find(session: Session, name: str) -> Application | None:
    return session.scalar(sa.select(Application).where(Application.name == name))


def get_or_create(session: Session, name: str, operating_point: str | None = None) -> Application:
    """The application called ``name``, created if missing; ``operating_point`` (when given) is set on it."""
    application = find(session, name)
    if application is None:
        application = Application(name=name, operating_point="default")
        session.add(application)
    if operating_point is not None:
        application.operating_point = operating_point
    session.flush()
    return application


def set_liveness_policy(session: Session, name: str, policy: str | None) -> bool:
    """Give the application its own liveness policy (None: follow the service's); False if there is no such one."""
    result = session.execute(sa.update(Application).where(Application.name == name).values(liveness_policy=policy))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def add_key(session: Session, application: Application, key_id: str, key_hash: str, key_hash_scheme: str,
            scopes: str, expires_at: datetime | None = None) -> ApiKey:
    key = ApiKey(application_id=application.id, key_id=key_id, key_hash=key_hash, key_hash_scheme=key_hash_scheme,
                 scopes=scopes, expires_at=expires_at)
    session.add(key)
    session.flush()
    return key


def find_keys(session: Session, key_ids: Collection[str]) -> list[ApiKey]:
    """The unrevoked keys with these ids (expired ones included), their applications loaded."""
    query = (sa.select(ApiKey).join(ApiKey.application)
             .where(ApiKey.key_id.in_(sorted(key_ids)), ApiKey.revoked_at.is_(None))
             .options(contains_eager(ApiKey.application)))
    return list(session.scalars(query))


def rehash_key(session: Session, key_id: str, key_hash: str, key_hash_scheme: str) -> None:
    """Replace a key's stored hash (a legacy SHA-256 by its keyed form); its id stays."""
    session.execute(sa.update(ApiKey).where(ApiKey.key_id == key_id)
                    .values(key_hash=key_hash, key_hash_scheme=key_hash_scheme))


def find_key(session: Session, key_id: str) -> ApiKey | None:
    """The unrevoked key with this id, its application loaded."""
    query = (sa.select(ApiKey).join(ApiKey.application)
             .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
             .options(contains_eager(ApiKey.application)))
    return session.scalar(query)


def revoke_key(session: Session, key_id: str, when: datetime) -> bool:
    result = session.execute(sa.update(ApiKey).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
                             .values(revoked_at=when))
    return bool(result.rowcount)  # type: ignore[attr-defined]
