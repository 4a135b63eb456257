"""The tables, as SQLAlchemy 2.0 typed models. Alembic migrations (``migrations/``) create them.

No photo is ever stored: a face is kept only as its embedding, tagged with the model that made it,
because embeddings of different models (or versions) are not comparable.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

USER_ID_LENGTH = 128


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite hands back naive ones otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Application(Base):
    """A client application; its users, keys and faces never mix with another application's."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    operating_point: Mapped[str] = mapped_column(sa.String(16), default="default")
    liveness_policy: Mapped[str | None] = mapped_column(sa.String(16))  # None: FACEAUTH_LIVENESS_POLICY
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiKey(Base):
    """A key an application authenticates with; only its HMAC-SHA256 under the pepper is stored (apikeys)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id", ondelete="CASCADE"))
    key_id: Mapped[str] = mapped_column(sa.String(16), unique=True)  # public: the first 16 hex of the hash
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    # 'hmac-sha256' (keyed with FACEAUTH_API_KEY_PEPPER_FILE), or 'sha256' for keys stored before migration 0008.
    key_hash_scheme: Mapped[str] = mapped_column(sa.String(16))
    scopes: Mapped[str] = mapped_column(sa.String(64))  # space-separated: enrol, login, admin
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # None: until revoked
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    application: Mapped[Application] = relationship()


class User(Base):
    """An end user of one application, named by the application's own id for them."""

    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("application_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(sa.String(USER_ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    templates: Mapped[list[FaceTemplate]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True)


class FaceTemplate(Base):
    """One enrolled face: the embedding and the model that produced it.

    ``embedding`` holds the float32 little-endian bytes sealed with AES-GCM under the template key
    ``key_id`` (templatecrypto), or the bytes themselves when ``key_id`` is NULL (encryption off, or
    stored before it was turned on).
    """

    __tablename__ = "face_templates"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(sa.String(64))
    model_version: Mapped[int]
    dimensions: Mapped[int]
    embedding: Mapped[bytes] = mapped_column(sa.LargeBinary)
    key_id: Mapped[str | None] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="templates")


class LoginAttempt(Base):
    """A face decision (login or verify) for one user id, kept as an audit trail (the distance stays here).

    A row is written *before* the models run, with ``succeeded`` NULL: a reservation of one attempt
    of the user's budget (faceauth_auth.lockout), so parallel requests cannot all be decided before
    the first failure is counted. The decision fills it in; a request that ends without one deletes it.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (sa.Index("ix_login_attempts_lookup", "application_id", "external_user_id", "created_at"),
                      # Retention deletes the oldest rows across every user (faceauth_auth.retention).
                      sa.Index("ix_login_attempts_created_at", "created_at"),
                      # The failure-rate breaker counts an application's recent decisions (faceauth_auth.breaker).
                      sa.Index("ix_login_attempts_application_time", "application_id", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id", ondelete="CASCADE"))
    # Not a foreign key: failures for unknown user ids count too, so the lockout cannot tell them apart.
    external_user_id: Mapped[str] = mapped_column(sa.String(USER_ID_LENGTH))
    succeeded: Mapped[bool | None]  # None: the decision is still being made
    distance: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AccountGuard(Base):
    """The attempt budget of one user id of one application, known or not (so locks tell nothing of who
    exists): failed decisions since the last success or lockout, the temporary lockouts since the last
    success (each longer than the one before), and a permanent lock that only an operator lifts."""

    __tablename__ = "account_guards"
    __table_args__ = (sa.UniqueConstraint("application_id", "external_user_id"),
                      sa.Index("ix_account_guards_updated_at", "updated_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id", ondelete="CASCADE"))
    external_user_id: Mapped[str] = mapped_column(sa.String(USER_ID_LENGTH))
    failures: Mapped[int] = mapped_column(default=0)
    lockouts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    locked_permanently_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    """Something that happened to an application's users, faces or keys; append-only (database triggers)
    but for retention, which may delete the oldest events older than 30 days.

    ``created_at`` is set by the database. ``row_hash`` chains each event to the one before it
    (``prev_hash``, repositories.audit.chain_hash), so ``audit verify`` finds a changed, inserted or
    removed event; on PostgreSQL a trigger fills both (migration 0009).
    Holds user ids, decisions and distances but never an embedding or a photo.
    """

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_application", "application_id", "id"),
                      sa.Index("ix_audit_events_user", "application_id", "external_user_id", "id"),
                      sa.Index("ix_audit_events_created_at", "created_at"))

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    # The database's clock, never the application's: a default of the column (migration 0009), never sent.
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=sa.FetchedValue())
    # No cascade: an application with audit events cannot be deleted (the log is append-only).
    application_id: Mapped[int | None] = mapped_column(sa.ForeignKey("applications.id"))
    event: Mapped[str] = mapped_column(sa.String(32))
    external_user_id: Mapped[str | None] = mapped_column(sa.String(USER_ID_LENGTH))
    api_key_id: Mapped[str | None] = mapped_column(sa.String(16))
    client_address: Mapped[str | None] = mapped_column(sa.String(64))
    outcome: Mapped[str] = mapped_column(sa.String(16))
    distance: Mapped[float | None]
    liveness_score: Mapped[float | None]
    request_id: Mapped[str | None] = mapped_column(sa.String(128))
    detail: Mapped[str | None] = mapped_column(sa.String(200))
    # Filled by the chain (never sent in the INSERT: the runtime role may not name them on PostgreSQL).
    prev_hash: Mapped[str | None] = mapped_column(sa.String(64), server_default=sa.FetchedValue())
    row_hash: Mapped[str | None] = mapped_column(sa.String(64), server_default=sa.FetchedValue())


class AuditChainHead(Base):
    """The one row naming the newest audit event and its hash: inserts lock it, so the chain never forks."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    last_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    last_hash: Mapped[str] = mapped_column(sa.String(64))


class LivenessChallenge(Base):
    """An active liveness challenge (faceauth_auth.challenges): the head turns asked for, answerable once
    before ``expires_at`` by the application that asked for it, for that user id (None: at identify)."""

    __tablename__ = "liveness_challenges"
    __table_args__ = (sa.Index("ix_liveness_challenges_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # random, from secrets.token_urlsafe
    application_id: Mapped[int] = mapped_column(sa.ForeignKey("applications.id", ondelete="CASCADE"))
    external_user_id: Mapped[str | None] = mapped_column(sa.String(USER_ID_LENGTH))
    steps: Mapped[str] = mapped_column(sa.String(64))  # space-separated: left, right
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # set once, by the answer
