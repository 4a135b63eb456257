"""The database connection: one engine per process and a transaction per unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def vector_column(dimensions: int) -> str:
    """The pgvector copy of embeddings of this size (migrations 0002 and 0007, where pgvector is available)."""
    return f"embedding_vec_{dimensions}"


# libpq settings: a database host that does not answer must not hold a request for minutes, neither
# while connecting (connect_timeout, seconds) nor while waiting for a reply on a connection whose
# host went away without closing it (TCP keepalives: declared dead after about 10 + 3 * 5 s).
LIBPQ_TIMEOUTS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                  "keepalives_count": 3}


def create_engine(url: str, *, pool_size: int = 16, pool_timeout: float = 5.0,
                  statement_timeout: float = 0.0) -> sa.Engine:
    """An engine with the settings faceauth relies on: SQLite enforces foreign keys; Postgres pings
    connections (so those left over from before a database restart are replaced, not used), bounds
    its pool, and bounds every wait on the database (connecting, a free pooled connection, a
    statement, a silent host) so that no request hangs.

    ``pool_size`` is the most connections the process opens; ``statement_timeout`` 0 means none.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url)
        sa.event.listen(engine, "connect", _sqlite_foreign_keys)
        return engine
    connect_args: dict[str, Any] = dict(LIBPQ_TIMEOUTS)
    if statement_timeout > 0:
        connect_args["options"] = f"-c statement_timeout={round(statement_timeout * 1000)}"
    return sa.create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=0, pool_timeout=pool_timeout,
                            connect_args=connect_args)


def _sqlite_foreign_keys(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """Sessions for the request handlers; every write happens inside one ``transaction()``.

    ``vector_search`` off (template encryption on) leaves the pgvector columns unused: a plaintext
    copy of every embedding next to the sealed one would defeat encryption at rest.
    """

    def __init__(self, engine: sa.Engine, *, vector_search: bool = True) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.vector_column_dimensions = self._vector_dimensions()
        # The embedding sizes whose templates get a vector copy and are searched through its index.
        self.vector_dimensions = self.vector_column_dimensions if vector_search else frozenset()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit when the block ends normally, roll everything back when it raises."""
        with self._sessions.begin() as session:
            yield session

    def _vector_dimensions(self) -> frozenset[int]:
        """Sizes of the pgvector columns; none when the database has none (SQLite, no extension)."""
        if self.engine.dialect.name != "postgresql":
            return frozenset()
        query = sa.text("select attname, atttypmod from pg_attribute where attrelid = 'face_templates'::regclass "
                        "and attname like 'embedding_vec_%' and not attisdropped")
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return frozenset(dims for name, dims in rows if name == vector_column(dims))

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(sa.text("select 1"))
