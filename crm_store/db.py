"""Engines and sessions for SQLite (the default) and PostgreSQL (the scale-out store)."""
from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 1.0  # seconds between background WAL checkpoints
# Pages of WAL after which a commit checkpoints by itself: only if the background thread falls behind.
AUTOCHECKPOINT_PAGES = 10_000
_NO_SUCH_STATEMENT, _FEATURE_NOT_SUPPORTED = "26000", "0A000"  # PostgreSQL's SQLSTATEs


class QueuedWriteConnection(sqlite3.Connection):
    """A pysqlite connection whose transactions queue on an exclusive file lock beside the database.

    SQLite lets one writer in at a time and makes the others poll: its busy handler sleeps 1, 2,
    5, 10 ... 100 ms between tries, so a web process that finds the database locked waits many
    times longer than the transaction it waits for (well under a millisecond on the webhook's
    path). ``flock`` queues the waiters in the kernel instead and wakes the next one the moment the
    lock is free. The kernel also drops the lock of a process that dies, so a crash blocks no one.

    A thread that already holds the lock through another connection (a unit of work opened inside
    another) does not queue behind itself: it falls back to SQLite's busy timeout, which ends in a
    clear "database is locked" error instead of a hang.
    """

    _holders: set[int] = set()  # threads of this process that hold the lock

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._lock_path = f"{os.fsdecode(database)}.writelock"
        self._lock_fd: int | None = None
        self._holder: int | None = None

    def begin(self) -> None:
        """Wait for the write lock, then BEGIN IMMEDIATE (SQLite's own write lock, taken at once)."""
        thread = threading.get_ident()
        if thread not in self._holders:
            if self._lock_fd is None:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # blocks without holding the GIL
            self._holder = thread
            self._holders.add(thread)
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._unlock()
            raise

    def _unlock(self) -> None:
        if self._holder is not None:
            self._holders.discard(self._holder)
            self._holder = None
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)  # type: ignore[arg-type]

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            # A failed COMMIT leaves the transaction open until the rollback that follows.
            if not self.in_transaction:
                self._unlock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._unlock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._unlock()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def make_engine(database_url: str, prepare_threshold: int | None = 5) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and queued write transactions.

    On PostgreSQL, psycopg prepares a statement on the server once it has run
    ``prepare_threshold`` times on a connection (``None``: never, as a transaction pooler needs).
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # No pre-ping: it costs a round trip per checkout on the hot path; recycling covers idle drops.
        engine = create_engine(url, pool_recycle=1800, pool_size=5, max_overflow=5,
                               connect_args={"prepare_threshold": prepare_threshold})
        event.listen(engine, "handle_error", _drop_stale_prepared_statements)
        return engine
    on_disk = bool(url.database) and url.database != ":memory:"
    if on_disk:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    connect_args: dict[str, Any] = {"timeout": 15}
    if on_disk:
        connect_args["factory"] = QueuedWriteConnection
    engine = create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        # The write lock is taken up front: several web processes then queue for it instead of
        # failing with SQLITE_BUSY when a read turns into a write.
        dbapi_connection = connection.connection.dbapi_connection
        if isinstance(dbapi_connection, QueuedWriteConnection):
            dbapi_connection.begin()
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    if on_disk:
        _checkpoint_in_background(engine, url.database)
    return engine


def _drop_stale_prepared_statements(context: ExceptionContext) -> None:
    """Treat a server-side prepared statement that no longer fits as a lost connection.

    Two ordinary events leave psycopg holding statements the server cannot run: a pooler's
    ``DEALLOCATE ALL`` or ``DISCARD ALL`` drops them behind its back ("prepared statement does not
    exist"), and a migration that changes a selected column's type breaks their plans ("cached
    plan must not change result type"). Either would fail every later use on that connection.
    As a disconnect, the pool drops the connection and every other it made before now (they
    hold the same statements), and the caller sees ``connection_invalidated`` and may retry on
    a fresh connection.
    """
    error = context.original_exception
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate == _NO_SUCH_STATEMENT or (
            sqlstate == _FEATURE_NOT_SUPPORTED and "cached plan must not change result type" in str(error)):
        log.warning("dropping the store's pooled connections: %s", str(error).strip())
        context.is_disconnect = True


def _checkpoint_in_background(engine: Engine, path: str) -> None:
    """Copy the WAL back into the database from a thread of this process, every second.

    SQLite otherwise checkpoints inside whichever commit crosses 1,000 pages of WAL: that commit
    then copies the pages and waits for fsync (about 10 ms here) while it still holds the write
    lock, so every other writer waits too; measured, the checkpoints were 1 % of commits and 60 %
    of commit time. A PASSIVE checkpoint here blocks no reader or writer. The thread ends when the
    engine is gone or the database file is removed.
    """
    alive = weakref.ref(engine)

    def run() -> None:
        connection = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            while alive() is not None and os.path.exists(path):
                time.sleep(CHECKPOINT_EVERY)
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.OperationalError as exc:  # another checkpoint is running: next time
                    log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            connection.close()

    threading.Thread(target=run, name=f"sqlite-wal-checkpoint {path}", daemon=True).start()
