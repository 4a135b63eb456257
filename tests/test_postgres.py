"""The data layer's tests run against the machine's real PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa


def test_real_postgres_answers(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        version = connection.execute(sa.text("select version()")).scalar_one()
    engine.dispose()
    assert version.startswith("PostgreSQL")
