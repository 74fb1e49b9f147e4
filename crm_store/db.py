"""Engines and sessions for SQLite (the default) and PostgreSQL (the scale-out store)."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(database_url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and write-ahead transactions."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # No pre-ping: it costs a round trip per checkout on the hot path; recycling covers idle drops.
        return create_engine(url, pool_recycle=1800, pool_size=5, max_overflow=5)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 15})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        # BEGIN IMMEDIATE takes the write lock up front: several web processes then queue on the
        # busy timeout instead of failing with SQLITE_BUSY when a read turns into a write.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
