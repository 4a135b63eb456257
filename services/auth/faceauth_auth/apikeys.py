"""API keys: made from 32 random bytes, shown once, stored as SHA-256 and checked in constant time.

A key's id is the start of its hash, so a lookup needs no secret-dependent index scan over the
key itself and the id can be printed, logged and used to revoke the key. A fast hash is enough
because the keys carry 256 bits of entropy (nothing to brute-force, unlike passwords).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from faceauth_auth.db import Database
from faceauth_auth.repositories import applications, audit
from faceauth_auth.repositories.audit import Event

KEY_PREFIX = "fa_"
MIN_KEY_LENGTH = 32
BOOTSTRAP_APPLICATION = "development"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Client:
    """The application an authenticated request acts for."""

    application_id: int
    application: str
    operating_point: str
    key_id: str
    liveness_policy: str | None = None  # None: the service's FACEAUTH_LIVENESS_POLICY


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str:
    return _digest(key)[:16]


def create(session: Session, application_name: str, key: str | None = None,
           operating_point: str | None = None) -> tuple[str, str]:
    """Store a new key for the application (created if missing); returns (key id, key) — show the key once."""
    key = key or KEY_PREFIX + secrets.token_urlsafe(32)
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"an API key needs at least {MIN_KEY_LENGTH} characters")
    application = applications.get_or_create(session, application_name, operating_point)
    applications.add_key(session, application, key_id_of(key), _digest(key))
    audit.record(session, Event.API_KEY_CREATED, "success", application_id=application.id,
                 detail=f"key {key_id_of(key)}")
    return key_id_of(key), key


def authenticate(session: Session, presented: str) -> Client | None:
    """The client holding ``presented``, or None for an unknown or revoked key."""
    digest = _digest(presented)
    stored = applications.find_key(session, digest[:16])
    if stored is None or not hmac.compare_digest(stored.key_hash, digest):
        return None
    return Client(stored.application_id, stored.application.name, stored.application.operating_point, stored.key_id,
                  stored.application.liveness_policy)


def revoke(session: Session, key_id: str) -> bool:
    key = applications.find_key(session, key_id)
    if key is None or not applications.revoke_key(session, key_id, datetime.now(UTC)):
        return False
    audit.record(session, Event.API_KEY_REVOKED, "success", application_id=key.application_id, detail=f"key {key_id}")
    return True


def ensure_bootstrap_key(db: Database, key: str) -> None:
    """Give the development application ``key`` unless it is already known (FACEAUTH_BOOTSTRAP_API_KEY)."""
    try:
        with db.transaction() as session:
            if applications.find_key(session, key_id_of(key)) is not None:
                return
            key_id, _ = create(session, BOOTSTRAP_APPLICATION, key)
    except IntegrityError:  # another replica stored it at the same moment
        return
    log.info("bootstrap API key stored", extra={"application": BOOTSTRAP_APPLICATION, "key_id": key_id})
