"""API keys: made from 32 random bytes, shown once, stored as HMAC-SHA256 under a server secret (the
pepper), checked in constant time, limited to scopes and optionally to a lifetime.

The pepper (FACEAUTH_API_KEY_PEPPER_FILE) never reaches the database, so a dump of ``api_keys``
does not let anyone check a candidate key offline. A key's id is the start of its keyed hash, so a
lookup needs no secret-dependent index scan over the key itself and the id can be printed, logged
and used to revoke the key. A fast hash is enough because the keys carry 256 bits of entropy
(nothing to brute-force, unlike passwords).

Keys stored before the pepper (``key_hash_scheme`` 'sha256', migration 0008) still work: they are
found by their old id (the start of the unkeyed SHA-256) and checked against it, and the first
successful use replaces the stored hash with the keyed one; the id stays, as it names the key in
the audit log and in ``keys revoke``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from faceauth_auth.config import Settings
from faceauth_auth.db import Database
from faceauth_auth.repositories import applications, audit
from faceauth_auth.repositories.audit import Event
from faceauth_auth.templatecrypto import read_key_file

KEY_PREFIX = "fa_"
MIN_KEY_LENGTH = 32
MIN_PEPPER_BYTES = 32
BOOTSTRAP_APPLICATION = "development"

# What a key may do: enrol faces; log in, verify, identify and detect; manage users, faces and read the audit log.
SCOPES = ("enrol", "login", "admin")
ALL_SCOPES = frozenset(SCOPES)
HMAC_SCHEME = "hmac-sha256"
LEGACY_SCHEME = "sha256"  # keys stored before migration 0008; rehashed on first use

log = logging.getLogger(__name__)


class PepperError(ValueError):
    """The API key pepper cannot be used (not configured, unreadable or too short)."""


@dataclass(frozen=True)
class Client:
    """The application an authenticated request acts for, and what its key may do."""

    application_id: int
    application: str
    operating_point: str
    key_id: str
    liveness_policy: str | None = None  # None: the service's FACEAUTH_LIVENESS_POLICY
    scopes: frozenset[str] = field(default=ALL_SCOPES)


def load_pepper(path: Path) -> bytes:
    """The pepper in ``path``: base64 of at least 32 bytes (``keys generate-api-key-pepper`` writes 32)."""
    pepper = read_key_file(path, "API key pepper", PepperError)
    if len(pepper) < MIN_PEPPER_BYTES:
        raise PepperError(f"the API key pepper {path} must hold at least {MIN_PEPPER_BYTES} bytes, not {len(pepper)}")
    return pepper


class KeyHasher:
    """Keyed hashes of API keys under the pepper, and the unkeyed SHA-256 of keys stored before it."""

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < MIN_PEPPER_BYTES:
            raise PepperError(f"the API key pepper must hold at least {MIN_PEPPER_BYTES} bytes")
        self._pepper = pepper

    def digest(self, key: str) -> str:
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).hexdigest()

    def key_id(self, key: str) -> str:
        return self.digest(key)[:16]

    @staticmethod
    def legacy_digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()


def hasher_from_settings(settings: Settings) -> KeyHasher:
    """The configured hasher; there is no unkeyed mode, so without a pepper nothing can check a key."""
    if settings.api_key_pepper_file is None:
        raise PepperError("no API key pepper: set FACEAUTH_API_KEY_PEPPER_FILE to a file made by `python -m "
                          "faceauth_auth keys generate-api-key-pepper --out FILE`")
    return KeyHasher(load_pepper(settings.api_key_pepper_file))


def parse_scopes(text: str) -> frozenset[str]:
    """``enrol,login`` (commas or spaces) as a set of scopes; ValueError for an unknown or empty one."""
    scopes = frozenset(part for part in text.replace(",", " ").split() if part)
    unknown = scopes - ALL_SCOPES
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}, not {text!r}")
    return scopes


def _scope_text(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))


def create(session: Session, application_name: str, key: str | None = None, operating_point: str | None = None,
           *, hasher: KeyHasher, scopes: Iterable[str] = ALL_SCOPES,
           expires_in: timedelta | None = None) -> tuple[str, str]:
    """Store a new key for the application (created if missing); returns (key id, key) — show the key once."""
    key = key or KEY_PREFIX + secrets.token_urlsafe(32)
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"an API key needs at least {MIN_KEY_LENGTH} characters")
    wanted = frozenset(scopes)
    if not wanted or wanted - ALL_SCOPES:
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}")
    if expires_in is not None and expires_in <= timedelta(0):
        raise ValueError("a key's lifetime must be positive")
    expires_at = datetime.now(UTC) + expires_in if expires_in is not None else None
    application = applications.get_or_create(session, application_name, operating_point)
    key_id = hasher.key_id(key)
    applications.add_key(session, application, key_id, hasher.digest(key), HMAC_SCHEME, _scope_text(wanted),
                         expires_at)
    expiry = f", expires {expires_at.isoformat(timespec='seconds')}" if expires_at else ""
    audit.record(session, Event.API_KEY_CREATED, "success", application_id=application.id,
                 detail=f"key {key_id} scopes {_scope_text(wanted)}{expiry}")
    return key_id, key


def authenticate(session: Session, presented: str, hasher: KeyHasher, now: datetime | None = None) -> Client | None:
    """The client holding ``presented``, or None for an unknown, revoked or expired key.

    A key still stored as plain SHA-256 is rehashed under the pepper here, in the caller's transaction.
    """
    keyed, legacy = hasher.digest(presented), hasher.legacy_digest(presented)
    for stored in applications.find_keys(session, {keyed[:16], legacy[:16]}):
        if stored.key_hash_scheme == HMAC_SCHEME:
            matches = hmac.compare_digest(stored.key_hash, keyed)
        else:
            matches = stored.key_hash_scheme == LEGACY_SCHEME and hmac.compare_digest(stored.key_hash, legacy)
        if not matches:
            continue
        if stored.expires_at is not None and stored.expires_at <= (now or datetime.now(UTC)):
            return None
        if stored.key_hash_scheme != HMAC_SCHEME:
            applications.rehash_key(session, stored.key_id, keyed, HMAC_SCHEME)
            log.info("API key rehashed under the pepper", extra={"key_id": stored.key_id})
        application = stored.application
        return Client(stored.application_id, application.name, application.operating_point, stored.key_id,
                      application.liveness_policy, frozenset(stored.scopes.split()))
    return None


def revoke(session: Session, key_id: str) -> bool:
    key = applications.find_key(session, key_id)
    if key is None or not applications.revoke_key(session, key_id, datetime.now(UTC)):
        return False
    audit.record(session, Event.API_KEY_REVOKED, "success", application_id=key.application_id, detail=f"key {key_id}")
    return True


def ensure_bootstrap_key(db: Database, key: str, hasher: KeyHasher) -> None:
    """Give the development application ``key`` unless it is already known (FACEAUTH_BOOTSTRAP_API_KEY)."""
    try:
        with db.transaction() as session:
            if authenticate(session, key, hasher) is not None:
                return
            key_id, _ = create(session, BOOTSTRAP_APPLICATION, key, hasher=hasher)
    except IntegrityError:  # another replica stored it at the same moment, or it was revoked or expired
        return
    log.info("bootstrap API key stored", extra={"application": BOOTSTRAP_APPLICATION, "key_id": key_id})
