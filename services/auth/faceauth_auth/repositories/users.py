"""Users and their face templates, always within one application; embeddings pass through the template cipher."""

from __future__ import annotations

import uuid
from typing import Protocol

import numpy as np
import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from faceauth_auth.db import VECTOR_COLUMN
from faceauth_auth.faces import EmbeddingModel
from faceauth_auth.models import FaceTemplate, User
from faceauth_auth.templatecrypto import TemplateCipher, associated_data


def to_bytes(embedding: np.ndarray) -> bytes:
    return np.asarray(embedding, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


def vector_table(dimensions: int) -> sa.TableClause:
    """face_templates as pgvector sees it: the ORM model does not map the optional vector column."""
    return sa.table("face_templates", sa.column("id", sa.Uuid), sa.column("user_id", sa.Integer),
                    sa.column("model_name", sa.String), sa.column("model_version", sa.Integer),
                    sa.column(VECTOR_COLUMN, Vector(dimensions)))


def _by_id(application_id: int, external_id: str) -> sa.Select[User]:
    return sa.select(User).where(User.application_id == application_id, User.external_id == external_id)


def find(session: Session, application_id: int, external_id: str) -> User | None:
    return session.scalar(_by_id(application_id, external_id))


def find_or_create(session: Session, application_id: int, external_id: str) -> User:
    """The user, locked until the transaction ends so concurrent enrolments respect the template cap."""
    locked = _by_id(application_id, external_id).with_for_update()
    user = session.scalar(locked)
    if user is not None:
        return user
    created = User(application_id=application_id, external_id=external_id)
    try:
        with session.begin_nested():
            session.add(created)
    except IntegrityError:  # a concurrent enrolment created the user first
        return session.scalars(locked).one()
    return created


def delete(session: Session, user: User) -> None:
    session.delete(user)  # templates go with it (ON DELETE CASCADE)


def template_count(session: Session, user: User) -> int:
    return session.scalar(sa.select(sa.func.count()).where(FaceTemplate.user_id == user.id)) or 0


def templates(session: Session, user: User) -> list[FaceTemplate]:
    return list(session.scalars(sa.select(FaceTemplate).where(FaceTemplate.user_id == user.id)
                                .order_by(FaceTemplate.created_at)))


class SealedTemplate(Protocol):
    """What opening a template needs: a FaceTemplate, or a row of just the _SEALED columns (cheaper to load)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> int: ...
    @property
    def model_name(self) -> str: ...
    @property
    def model_version(self) -> int: ...
    @property
    def dimensions(self) -> int: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def embedding(self) -> bytes: ...


_SEALED = (FaceTemplate.id, FaceTemplate.user_id, FaceTemplate.model_name, FaceTemplate.model_version,
           FaceTemplate.dimensions, FaceTemplate.key_id, FaceTemplate.embedding)


def _binding(template: SealedTemplate) -> bytes:
    return associated_data(template.id, template.user_id, template.model_name, template.model_version,
                           template.dimensions)


def _seal(template: FaceTemplate, embedding: np.ndarray, cipher: TemplateCipher) -> None:
    template.key_id, template.embedding = cipher.seal(to_bytes(embedding), _binding(template))


def embedding_of(template: SealedTemplate, cipher: TemplateCipher) -> np.ndarray:
    """The template's embedding, opened with its key (raises TemplateDecryptionError if it cannot be)."""
    return from_bytes(cipher.open(template.key_id, template.embedding, _binding(template)))


def add_template(session: Session, user: User, model: EmbeddingModel, embedding: np.ndarray,
                 vector_dimensions: int | None, cipher: TemplateCipher) -> FaceTemplate:
    """Store an embedding, sealed under the current template key; also in the pgvector column when the
    database has one of this size and vector search is on (template encryption off)."""
    template = FaceTemplate(id=uuid.uuid4(), user_id=user.id, model_name=model.name, model_version=model.version,
                            dimensions=model.dimensions)
    _seal(template, embedding, cipher)
    session.add(template)
    session.flush()
    if vector_dimensions == model.dimensions:
        table = vector_table(vector_dimensions)
        session.execute(sa.update(table).where(table.c.id == template.id)
                        .values({VECTOR_COLUMN: np.asarray(embedding, dtype=np.float32)}))
    return template


def reseal_batch(session: Session, cipher: TemplateCipher, size: int, vector_column_dimensions: int | None) -> int:
    """Move up to ``size`` templates not sealed under the current key onto it; how many were moved.

    Rows another transaction is resealing are skipped, so several runs may share the work. Where the
    database has a pgvector column, the plaintext copies of the moved rows are emptied too.
    """
    stale = sa.or_(FaceTemplate.key_id.is_(None), FaceTemplate.key_id != cipher.current_key_id)
    batch = list(session.scalars(sa.select(FaceTemplate).where(stale).order_by(FaceTemplate.id).limit(size)
                                 .with_for_update(skip_locked=True)))
    for template in batch:
        _seal(template, embedding_of(template, cipher), cipher)
    if batch and vector_column_dimensions is not None:
        table = vector_table(vector_column_dimensions)
        session.execute(sa.update(table).where(table.c.id.in_([t.id for t in batch])).values({VECTOR_COLUMN: None}))
    session.flush()
    return len(batch)


def delete_template(session: Session, user: User, face_id: uuid.UUID) -> bool:
    result = session.execute(sa.delete(FaceTemplate).where(FaceTemplate.user_id == user.id,
                                                           FaceTemplate.id == face_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _of_model(model: EmbeddingModel) -> sa.ColumnElement[bool]:
    return sa.and_(FaceTemplate.model_name == model.name, FaceTemplate.model_version == model.version,
                   FaceTemplate.dimensions == model.dimensions)


def embeddings(session: Session, user: User, model: EmbeddingModel, cipher: TemplateCipher) -> np.ndarray:
    """(N, D) embeddings of the user's templates made by ``model``; other models' are never compared."""
    rows = session.execute(sa.select(*_SEALED).where(FaceTemplate.user_id == user.id, _of_model(model)))
    return np.array([embedding_of(row, cipher) for row in rows], dtype=np.float32).reshape(-1, model.dimensions)


def application_embeddings(session: Session, application_id: int, model: EmbeddingModel,
                           cipher: TemplateCipher) -> tuple[list[str], np.ndarray]:
    """Every template of the application made by ``model``: owners' ids and an (N, D) array."""
    rows = session.execute(sa.select(User.external_id, *_SEALED).join(FaceTemplate.user)
                           .where(User.application_id == application_id, _of_model(model))).all()
    owners = [row.external_id for row in rows]
    return owners, np.array([embedding_of(row, cipher) for row in rows], dtype=np.float32).reshape(-1, model.dimensions)


def nearest_by_vector(session: Session, application_id: int, model: EmbeddingModel, probe: np.ndarray,
                      ef_search: int) -> tuple[str, float] | None:
    """The application's template nearest to ``probe`` through pgvector's HNSW index (L2), with its distance."""
    table = vector_table(model.dimensions)
    distance = table.c[VECTOR_COLUMN].l2_distance(np.asarray(probe, dtype=np.float32))
    # Candidates of other applications are filtered after the index scan; a wider search keeps recall up.
    session.execute(sa.text("select set_config('hnsw.ef_search', :value, true)"), {"value": str(ef_search)})
    row = session.execute(
        sa.select(User.external_id, distance.label("distance")).join(User, User.id == table.c.user_id)
        .where(User.application_id == application_id, table.c.model_name == model.name,
               table.c.model_version == model.version, table.c[VECTOR_COLUMN].is_not(None))
        .order_by(distance).limit(1)).first()
    return None if row is None else (row.external_id, float(row.distance))


def template_counts(session: Session) -> dict[str, int]:
    """Templates stored per model label ("name/version"), for the enrolled-templates gauge."""
    rows = session.execute(sa.select(FaceTemplate.model_name, FaceTemplate.model_version, sa.func.count())
                           .group_by(FaceTemplate.model_name, FaceTemplate.model_version)).all()
    return {f"{name}/{version}": count for name, version, count in rows}
