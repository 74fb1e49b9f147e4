"""Proof, instead of a pause, that a transaction is waiting for a lock another one holds.

A concurrency test parks the first transaction while it holds its lock, starts the second, and
calls ``wait_for_lock_waiter``: it returns only once the store itself shows a waiter, so the
interleaving the test asserts on has provably happened, however slow or fast the machine.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import pytest
from sqlalchemy import Engine, create_engine, text

_PROC_LOCKS = Path("/proc/locks")
# Backends of this database that wait for a lock held by another backend.
_PG_WAITERS = text("SELECT count(*) FROM pg_stat_activity "
                   "WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0")


def wait_for_lock_waiter(engine: Engine, timeout: float = 10.0) -> None:
    """Return once a transaction on ``engine``'s database waits for another's lock; fail after ``timeout``.

    PostgreSQL: a backend with a blocking pid (``pg_blocking_pids``), read on a connection of the
    test's own. SQLite: a writer queued on the database's write-lock file (``crm_store.db`` takes
    it with flock before BEGIN IMMEDIATE), in the kernel's list of lock waiters, ``/proc/locks``.
    """
    if engine.dialect.name == "postgresql":
        # Autocommit: pg_stat_activity is read once per transaction, so each poll needs its own.
        probe = create_engine(engine.url, isolation_level="AUTOCOMMIT")
        try:
            _poll(lambda: _postgres_has_waiter(probe), timeout)
        finally:
            probe.dispose()
    else:
        wait_for_flock_waiter(Path(f"{engine.url.database}.writelock"), timeout)


def wait_for_flock_waiter(lock_file: Path, timeout: float = 10.0) -> None:
    """Return once a process or thread waits for the flock on ``lock_file``; fail after ``timeout``."""
    if not _PROC_LOCKS.exists():
        pytest.skip("seeing a writer wait for SQLite's write lock needs /proc/locks (Linux)")
    _poll(lambda: lock_file.exists() and _flock_has_waiter(lock_file), timeout)


def _poll(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no transaction waited for a lock within {timeout} s")
        time.sleep(0.005)  # how often to look; nothing depends on its length


def _postgres_has_waiter(probe: Engine) -> bool:
    with probe.connect() as connection:
        return bool(connection.scalar(_PG_WAITERS))


def _flock_has_waiter(lock_file: Path) -> bool:
    st = lock_file.stat()
    # /proc/locks names a file major:minor:inode (device numbers in hex) and marks a request
    # that waits for a lock held on it with "->".
    file_id = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(fields[1:2] == ["->"] and file_id in fields
               for fields in (line.split() for line in _PROC_LOCKS.read_text().splitlines()))
