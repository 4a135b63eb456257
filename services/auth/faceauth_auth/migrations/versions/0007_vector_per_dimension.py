"""pgvector: one vector column and HNSW index per embedding size (128: dlib-resnet, 192: mobilefacenet).

Where migration 0002 made the 128-d column, it is renamed ``embedding_vec_128`` (its index too) and
a 192-d column with its own index joins it, so that templates of both models of a migration window
are searched through an index. Without pgvector this revision does nothing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ADDED_DIMENSIONS = 192


def _has_column(name: str) -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    query = sa.text("select 1 from pg_attribute where attrelid = 'face_templates'::regclass "
                    "and attname = :name and not attisdropped")
    return bind.execute(query, {"name": name}).first() is not None


def upgrade() -> None:
    if not _has_column("embedding_vec"):
        return
    op.execute("alter table face_templates rename column embedding_vec to embedding_vec_128")
    op.execute("alter index ix_face_templates_embedding_hnsw rename to ix_face_templates_embedding_128_hnsw")
    op.execute(f"alter table face_templates add column embedding_vec_{ADDED_DIMENSIONS} vector({ADDED_DIMENSIONS})")
    op.execute(f"create index ix_face_templates_embedding_{ADDED_DIMENSIONS}_hnsw on face_templates "
               f"using hnsw (embedding_vec_{ADDED_DIMENSIONS} vector_l2_ops)")


def downgrade() -> None:
    if not _has_column("embedding_vec_128"):
        return
    op.execute(f"drop index if exists ix_face_templates_embedding_{ADDED_DIMENSIONS}_hnsw")
    op.execute(f"alter table face_templates drop column if exists embedding_vec_{ADDED_DIMENSIONS}")
    op.execute("alter index ix_face_templates_embedding_128_hnsw rename to ix_face_templates_embedding_hnsw")
    op.execute("alter table face_templates rename column embedding_vec_128 to embedding_vec")
