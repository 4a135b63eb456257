"""Users and their face templates, always within one application; embeddings pass through the template cipher."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from faceauth_auth.db import vector_column
from faceauth_auth.faces import EmbeddingModel
from faceauth_auth.models import Application, FaceTemplate, User
from faceauth_auth.templatecrypto import TemplateCipher, associated_data


def to_bytes(embedding: np.ndarray) -> bytes:
    return np.asarray(embedding, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


def vector_table(dimensions: int) -> sa.TableClause:
    """face_templates as pgvector sees it: the ORM model does not map the optional vector columns."""
    return sa.table("face_templates", sa.column("id", sa.Uuid), sa.column("user_id", sa.Integer),
                    sa.column("model_name", sa.String), sa.column("model_version", sa.Integer),
                    sa.column(vector_column(dimensions), Vector(dimensions)))


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
                 vector_dimensions: frozenset[int], cipher: TemplateCipher) -> FaceTemplate:
    """Store an embedding, sealed under the current template key; also in the pgvector column of its
    size when vector search has one (``vector_dimensions``; none with template encryption on)."""
    template = FaceTemplate(id=uuid.uuid4(), user_id=user.id, model_name=model.name, model_version=model.version,
                            dimensions=model.dimensions)
    _seal(template, embedding, cipher)
    session.add(template)
    session.flush()
    if model.dimensions in vector_dimensions:
        table = vector_table(model.dimensions)
        session.execute(sa.update(table).where(table.c.id == template.id)
                        .values({vector_column(model.dimensions): np.asarray(embedding, dtype=np.float32)}))
    return template


def reseal_batch(session: Session, cipher: TemplateCipher, size: int, vector_column_dimensions: frozenset[int]) -> int:
    """Move up to ``size`` templates not sealed under the current key onto it; how many were moved.

    Rows another transaction is resealing are skipped, so several runs may share the work. Where the
    database has a pgvector column, the plaintext copies of the moved rows are emptied too.
    """
    stale = sa.or_(FaceTemplate.key_id.is_(None), FaceTemplate.key_id != cipher.current_key_id)
    batch = list(session.scalars(sa.select(FaceTemplate).where(stale).order_by(FaceTemplate.id).limit(size)
                                 .with_for_update(skip_locked=True)))
    for template in batch:
        _seal(template, embedding_of(template, cipher), cipher)
    for dimensions in vector_column_dimensions if batch else ():
        table = vector_table(dimensions)
        session.execute(sa.update(table).where(table.c.id.in_([t.id for t in batch]))
                        .values({vector_column(dimensions): None}))
    session.flush()
    return len(batch)


def delete_template(session: Session, user: User, face_id: uuid.UUID) -> bool:
    result = session.execute(sa.delete(FaceTemplate).where(FaceTemplate.user_id == user.id,
                                                           FaceTemplate.id == face_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _of_model(model: EmbeddingModel) -> sa.ColumnElement[bool]:
    return sa.and_(FaceTemplate.model_name == model.name, FaceTemplate.model_version == model.version,
                   FaceTemplate.dimensions == model.dimensions)


def template_models(session: Session, user: User) -> set[EmbeddingModel]:
    """The models the user's templates were made by."""
    rows = session.execute(sa.select(FaceTemplate.model_name, FaceTemplate.model_version, FaceTemplate.dimensions)
                           .where(FaceTemplate.user_id == user.id).distinct()).all()
    return {EmbeddingModel(name, version, dimensions) for name, version, dimensions in rows}


def _has_template_of(model: EmbeddingModel) -> sa.ColumnElement[bool]:
    """Whether the user (the query's User row) has a template made by ``model``."""
    other = aliased(FaceTemplate)
    return sa.exists().where(other.user_id == User.id, other.model_name == model.name,
                             other.model_version == model.version)


def _without_templates_of(model: EmbeddingModel | None) -> sa.ColumnElement[bool]:
    """Users with no template of ``model`` (every user for None): those a legacy model still decides for."""
    return sa.true() if model is None else ~_has_template_of(model)


@dataclass(frozen=True)
class MigrationStatus:
    """Where an application's users stand in a move to the primary embedding model."""

    application: str
    users: int
    migrated: int  # with a template of the primary model
    waiting: int  # only templates of legacy models still served: moved at their next login
    stranded: int  # no template a served model can compare with: they must enrol again

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def migration_status(session: Session, primary: EmbeddingModel,
                     legacy: tuple[EmbeddingModel, ...]) -> list[MigrationStatus]:
    """Per application, its users counted by the models their templates were made by."""
    migrated = _has_template_of(primary)
    waiting = sa.and_(~migrated, sa.or_(sa.false(), *(_has_template_of(model) for model in legacy)))

    def count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    rows = session.execute(sa.select(Application.name, sa.func.count(User.id), count(migrated), count(waiting))
                           .join(User, User.application_id == Application.id)
                           .group_by(Application.name).order_by(Application.name)).all()
    return [MigrationStatus(name, users, done, left, users - done - left) for name, users, done, left in rows]


def embeddings(session: Session, user: User, model: EmbeddingModel, cipher: TemplateCipher) -> np.ndarray:
    """(N, D) embeddings of the user's templates made by ``model``; other models' are never compared."""
    rows = session.execute(sa.select(*_SEALED).where(FaceTemplate.user_id == user.id, _of_model(model)))
    return np.array([embedding_of(row, cipher) for row in rows], dtype=np.float32).reshape(-1, model.dimensions)


def application_embeddings(session: Session, application_id: int, model: EmbeddingModel,
                           cipher: TemplateCipher, skip_users_of: EmbeddingModel | None = None,
                           ) -> tuple[list[str], np.ndarray]:
    """Every template of the application made by ``model``, but for users who have one of ``skip_users_of``:
    owners' ids and an (N, D) array."""
    rows = session.execute(sa.select(User.external_id, *_SEALED).join(FaceTemplate.user)
                           .where(User.application_id == application_id, _of_model(model),
                                  _without_templates_of(skip_users_of))).all()
    owners = [row.external_id for row in rows]
    return owners, np.array([embedding_of(row, cipher) for row in rows], dtype=np.float32).reshape(-1, model.dimensions)


def gallery_size(session: Session, application_id: int, model: EmbeddingModel,
                 skip_users_of: EmbeddingModel | None = None) -> int:
    """How many of the application's templates ``model`` made, but for users who have one of ``skip_users_of``."""
    return session.scalar(sa.select(sa.func.count(FaceTemplate.id)).join(FaceTemplate.user)
                          .where(User.application_id == application_id, _of_model(model),
                                 _without_templates_of(skip_users_of))) or 0


def nearest_by_vector(session: Session, application_id: int, model: EmbeddingModel, probe: np.ndarray,
                      ef_search: int, skip_users_of: EmbeddingModel | None = None) -> tuple[str, float] | None:
    """The application's template nearest to ``probe`` through pgvector's HNSW index (L2), with its distance;
    users who have a template of ``skip_users_of`` are left out."""
    table = vector_table(model.dimensions)
    column = table.c[vector_column(model.dimensions)]
    distance = column.l2_distance(np.asarray(probe, dtype=np.float32))
    # Candidates of other applications are filtered after the index scan; a wider search keeps recall up.
    session.execute(sa.text("select set_config('hnsw.ef_search', :value, true)"), {"value": str(ef_search)})
    row = session.execute(
        sa.select(User.external_id, distance.label("distance")).join(User, User.id == table.c.user_id)
        .where(User.application_id == application_id, table.c.model_name == model.name,
               table.c.model_version == model.version, column.is_not(None), _without_templates_of(skip_users_of))
        .order_by(distance).limit(1)).first()
    return None if row is None else (row.external_id, float(row.distance))


def template_counts(session: Session) -> dict[str, int]:
    """Templates stored per model label ("name/version"), for the enrolled-templates gauge."""
    rows = session.execute(sa.select(FaceTemplate.model_name, FaceTemplate.model_version, sa.func.count())
                           .group_by(FaceTemplate.model_name, FaceTemplate.model_version)).all()
    return {f"{name}/{version}": count for name, version, count in rows}
