"""pgvector: a vector copy of each embedding with an HNSW index (L2) for 1:N identification.

Only on PostgreSQL with the ``vector`` extension available; elsewhere this revision does nothing and
identification searches in process (faceauth_auth.search). The column has the shipped model's
dimensions; templates of models with other dimensions leave it empty and are searched exactly.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DIMENSIONS = 128


def _vector_available() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    query = sa.text("select 1 from pg_available_extensions where name = 'vector'")
    return bind.execute(query).first() is not None


def upgrade() -> None:
    if not _vector_available():
        return
    op.execute("create extension if not exists vector")
    op.execute(f"alter table face_templates add column embedding_vec vector({DIMENSIONS})")
    op.execute("create index ix_face_templates_embedding_hnsw on face_templates "
               "using hnsw (embedding_vec vector_l2_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("drop index if exists ix_face_templates_embedding_hnsw")
        op.execute("alter table face_templates drop column if exists embedding_vec")
