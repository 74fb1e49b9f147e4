"""The webhook's store path: its Core statements, PostgreSQL's prepared statements under a pooler's
reset and a migration, the bot's state in the store, SQLite's write queue."""
from __future__ import annotations

import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.inbox import receive
from channels import base
from channels.base import InboundMessage
from crm_store import services
from crm_store.db import QueuedWriteConnection
from crm_store.models import Customer, Message
from tests.lock_waits import wait_for_flock_waiter, wait_for_lock_waiter


def message(text: str, n: int, user: str = "oHotPath") -> InboundMessage:
    return InboundMessage("wechat", "gh", user, f"msg:{n}", base.TEXT, datetime.now(timezone.utc), text,
                          external_message_id=str(n), attributes={"note": "中文 ]]> \"q\""}, raw="<xml/>")


def test_hot_path_statements_store_and_read_values_as_the_orm_does(runtime) -> None:
    with runtime.uow() as uow:
        recorded = services.record_inbound(message("你好", 1), uow)
        uow.commit()
    with runtime.uow() as uow:  # read back through the ORM: same types, same values
        stored = uow.session.get(Message, recorded.message_id)
        assert stored.attributes == {"note": "中文 ]]> \"q\""} and stored.text == "你好"
        assert stored.sent_at is not None and abs(stored.created_at.replace(tzinfo=timezone.utc)
                                                 - datetime.now(timezone.utc)) < timedelta(minutes=1)
        assert stored.dedupe_key == "wechat:gh:msg:1" and stored.external_id == "1"
    with runtime.uow() as uow:
        again = services.record_inbound(message("你好", 1), uow)
    assert again.duplicate and again.message_id == recorded.message_id


def test_store_errors_are_sqlalchemy_errors_and_roll_back(runtime) -> None:
    now = datetime.now(timezone.utc)
    with runtime.uow() as uow:
        customer = uow.execute(services.INSERT_CUSTOMER, {"created_at": now}).scalar()
        row = {"customer_id": customer, "channel": "wechat", "account": "gh", "external_id": "oTwin",
               "subscribed": False, "created_at": now}
        uow.execute(services.INSERT_IDENTITY, row)
        with pytest.raises(IntegrityError):
            uow.execute(services.INSERT_IDENTITY, row)  # the unique (channel, account, external id)
        uow.rollback()
    with runtime.uow() as uow:
        assert uow.session.scalars(select(Customer)).all() == []


def test_state_expires_and_rolls_back_with_the_message(runtime) -> None:
    with runtime.uow() as uow:
        recorded = services.record_inbound(message("加盟", 1), uow)
        services.save_conversation_state(recorded.conversation_id, {"misses": 1}, uow, ttl=60)
        uow.commit()
    with runtime.uow() as uow:
        assert services.record_inbound(message("x", 2), uow).state == {"misses": 1}
        services.save_conversation_state(recorded.conversation_id, {"misses": 2}, uow, ttl=60)
        uow.rollback()  # the message and its state change are undone together
    with runtime.uow() as uow:
        assert services.conversation_state(recorded.conversation_id, uow) == {"misses": 1}
        services.save_conversation_state(recorded.conversation_id, {"misses": 3}, uow, ttl=-1)
        uow.commit()
    with runtime.uow() as uow:
        assert services.conversation_state(recorded.conversation_id, uow) == {}  # expired
        assert services.record_inbound(message("y", 3), uow).state == {}


def test_a_message_that_waited_for_the_customer_reads_the_state_left_by_the_first(runtime) -> None:
    """Two messages of one customer at once: the second waits on the identity's lock and must see
    the state the first saved, not what the store held when it started to wait."""
    with runtime.uow() as uow:
        services.record_inbound(message("warm-up", 0), uow)  # the customer and conversation exist
        uow.commit()
    seen: list[dict] = []
    first_holds_lock = threading.Event()

    def second() -> None:
        first_holds_lock.wait(5)
        with runtime.uow() as uow:
            seen.append(dict(services.record_inbound(message("second", 2), uow).state))
            uow.commit()

    waiter = threading.Thread(target=second)
    waiter.start()
    with runtime.uow() as uow:
        recorded = services.record_inbound(message("first", 1), uow)
        first_holds_lock.set()
        wait_for_lock_waiter(runtime.engine)  # the second message is now waiting for the identity
        assert seen == []
        services.save_conversation_state(recorded.conversation_id, {"flow": {"name": "lead"}}, uow, ttl=60)
        uow.commit()
    waiter.join(10)
    assert seen == [{"flow": {"name": "lead"}}]


def test_flows_go_on_when_redis_is_down(tmp_path, database_url, redis) -> None:
    from tests.conftest import make_settings
    from workers.runtime import Runtime

    runtime = Runtime.build(make_settings(tmp_path, database_url, f"unix://{tmp_path}/no-such-redis.sock"))
    try:
        started = receive(message("想咨询加盟", 1), runtime.uow, runtime.router)
        named = receive(message("张先生", 2), runtime.uow, runtime.router)
        assert "怎么称呼" in started and "手机号" in named  # the flow's state survived between messages
        receive(message("绑卡", 3, user="oBinds"), runtime.uow, runtime.router)
        # Binding needs a one-time code, kept in Redis: the customer is told to try later, nothing is lost.
        assert "验证服务暂时不可用" in receive(message("13812345678", 4, user="oBinds"), runtime.uow, runtime.router)
        with runtime.uow() as uow:
            assert uow.session.scalar(select(Message.id).where(Message.dedupe_key == "wechat:gh:msg:4"))
    finally:
        runtime.engine.dispose()


def test_sqlite_writers_queue_on_the_file_lock(tmp_path) -> None:
    path = str(tmp_path / "queue.db")
    first = sqlite3.connect(path, factory=QueuedWriteConnection, isolation_level=None, check_same_thread=False)
    first.execute("CREATE TABLE t (n INTEGER)")
    order: list[str] = []

    def later_writer() -> None:
        second = sqlite3.connect(path, factory=QueuedWriteConnection, isolation_level=None, timeout=0.05)
        second.begin()  # waits for the first writer far longer than SQLite's own 50 ms timeout
        order.append("second")
        second.execute("INSERT INTO t VALUES (2)")
        second.commit()
        second.close()

    first.begin()
    first.execute("INSERT INTO t VALUES (1)")
    thread = threading.Thread(target=later_writer)
    thread.start()
    wait_for_flock_waiter(Path(f"{path}.writelock"))  # the second writer now queues on the lock
    order.append("first")
    first.commit()
    thread.join(5)
    assert order == ["first", "second"]
    assert [n for (n,) in first.execute("SELECT n FROM t ORDER BY rowid")] == [1, 2]
    first.close()


def test_sqlite_nested_writer_in_one_thread_fails_instead_of_hanging(tmp_path) -> None:
    path = str(tmp_path / "nested.db")
    outer = sqlite3.connect(path, factory=QueuedWriteConnection, isolation_level=None)
    inner = sqlite3.connect(path, factory=QueuedWriteConnection, isolation_level=None, timeout=0.1)
    outer.begin()
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        inner.begin()
    assert time.monotonic() - started < 5
    outer.rollback()
    inner.begin()  # the lock was released on rollback, and on the failed begin
    inner.rollback()
    outer.close()
    inner.close()


def test_sqlite_wal_is_checkpointed_in_the_background(tmp_path) -> None:
    import gc
    import shutil

    from crm_store.db import make_engine
    from crm_store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'wal.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(Customer.__table__.insert(), [{"created_at": datetime.now(timezone.utc)}] * 50)

    def rows_in_main_file() -> int:
        # A copy of the database file alone, without its WAL: only checkpointed pages are in it.
        copy = tmp_path / "main-only.db"
        shutil.copyfile(tmp_path / "wal.db", copy)
        with sqlite3.connect(copy) as only_main:
            return only_main.execute("SELECT count(*) FROM customers").fetchone()[0]

    deadline = time.monotonic() + 10
    while rows_in_main_file() < 50 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rows_in_main_file() == 50
    engine.dispose()
    del engine, connection
    name = f"sqlite-wal-checkpoint {tmp_path / 'wal.db'}"
    deadline = time.monotonic() + 10
    while any(t.name == name for t in threading.enumerate()) and time.monotonic() < deadline:
        gc.collect()  # the thread ends once its engine is gone
        time.sleep(0.2)
    assert not any(t.name == name for t in threading.enumerate())


# The store-wide ``runtime`` fixture, on its PostgreSQL variant only: these test libpq's path.
on_postgres_only = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def _backend_pid(uow) -> int:  # type: ignore[no-untyped-def]
    return uow.connection.connection.dbapi_connection.pgconn.backend_pid


def _prepared_statements(runtime) -> list[str]:  # type: ignore[no-untyped-def]
    """The statements prepared on the pooled connection. Committed, not rolled back: psycopg
    deallocates every statement of a connection on a rollback."""
    with runtime.engine.begin() as connection:
        return [sql for (sql,) in connection.exec_driver_sql(
            "SELECT statement FROM pg_prepared_statements ORDER BY name")]


def _webhook(runtime, n: int) -> str:  # type: ignore[no-untyped-def]
    return receive(message("你好", n), runtime.uow, runtime.router)


@pytest.fixture()
def prepared_runtime(tmp_path, postgres_url, redis_url, redis):  # type: ignore[no-untyped-def]
    """A PostgreSQL runtime whose one pooled connection prepares every statement at its first run."""
    from tests.conftest import _empty_postgres, make_settings
    from workers.runtime import Runtime

    _empty_postgres(postgres_url)
    runtime = Runtime.build(make_settings(tmp_path, postgres_url, redis_url, database_prepare_threshold="0"))
    yield runtime
    runtime.engine.dispose()


@pytest.mark.postgres
def test_postgres_pooler_reset_drops_prepared_statements_and_the_next_webhook_is_stored(prepared_runtime) -> None:
    runtime = prepared_runtime
    assert _webhook(runtime, 1)
    assert any(sql.startswith("INSERT INTO messages") for sql in _prepared_statements(runtime))
    with runtime.engine.connect() as connection:  # the pooled connection the webhook used
        # What a pooler's server reset does: the statements go, behind psycopg's back.
        connection.connection.dbapi_connection.pgconn.exec_(b"DEALLOCATE ALL")
    assert _webhook(runtime, 2) and _webhook(runtime, 3)
    with runtime.uow() as uow:
        assert [m.external_id for m in uow.session.scalars(
            select(Message).filter_by(direction="in").order_by(Message.id))] == ["1", "2", "3"]


@pytest.mark.postgres
def test_postgres_migration_changing_a_selected_type_and_the_next_webhook_is_stored(prepared_runtime,
                                                                                    postgres_url) -> None:
    runtime = prepared_runtime
    assert _webhook(runtime, 1)
    assert any("FROM channel_identities" in sql for sql in _prepared_statements(runtime))
    migration = create_engine(postgres_url)
    try:
        with migration.begin() as connection:  # the identity read's customer_id becomes a bigint
            connection.exec_driver_sql("ALTER TABLE channel_identities ALTER COLUMN customer_id TYPE bigint")
        assert _webhook(runtime, 2) and _webhook(runtime, 3)
        with runtime.uow() as uow:
            assert [m.external_id for m in uow.session.scalars(
                select(Message).filter_by(direction="in").order_by(Message.id))] == ["1", "2", "3"]
    finally:
        runtime.engine.dispose()
        with migration.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE channel_identities ALTER COLUMN customer_id TYPE integer")
        migration.dispose()


@pytest.mark.postgres
def test_postgres_behind_a_transaction_pooler_prepares_nothing(tmp_path, postgres_url, redis_url, redis) -> None:
    from tests.conftest import _empty_postgres, make_settings
    from workers.runtime import Runtime

    _empty_postgres(postgres_url)
    runtime = Runtime.build(make_settings(tmp_path, postgres_url, redis_url, database_prepare_threshold="none"))
    try:
        for n in range(1, 8):
            assert _webhook(runtime, n)
        assert _prepared_statements(runtime) == []
    finally:
        runtime.engine.dispose()


@on_postgres_only
@pytest.mark.parametrize("lost_before", ["statement", "commit"])
def test_postgres_connection_lost_mid_message_loses_nothing_half_written(runtime, database_url, lost_before) -> None:
    with runtime.uow() as uow:
        services.record_inbound(message("warm-up", 0), uow)
        uow.commit()
    killer = create_engine(database_url)
    try:
        with runtime.uow() as uow:
            recorded = services.record_inbound(message("lost", 1), uow)  # inside a transaction now
            with killer.begin() as connection:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": _backend_pid(uow)})
            with pytest.raises(OperationalError) as lost:
                if lost_before == "statement":
                    services.record_outbound(recorded.conversation_id, "x", uow, customer_id=recorded.customer_id)
                else:
                    uow.commit()
            assert lost.value.connection_invalidated
    finally:
        killer.dispose()
    # The pool has dropped the dead connection; the lost message was never committed, so its retry is new.
    with runtime.uow() as uow:
        assert not services.record_inbound(message("lost", 1), uow).duplicate
        uow.commit()
    with runtime.uow() as uow:
        texts = [m.text for m in uow.session.scalars(select(Message).order_by(Message.id))]
    assert texts == ["warm-up", "lost"]


@on_postgres_only
def test_postgres_error_at_commit_is_sqlalchemys_and_keeps_nothing(runtime) -> None:
    with runtime.uow() as uow:
        services.record_inbound(message("kept out", 1), uow)
        # A key checked only at COMMIT: the commit itself fails.
        uow.connection.exec_driver_sql("CREATE TEMP TABLE deferred (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
        uow.connection.exec_driver_sql("INSERT INTO deferred VALUES (1), (1)")
        with pytest.raises(IntegrityError):
            uow.commit()
    with runtime.uow() as uow:
        assert uow.session.scalars(select(Message)).all() == []
        assert not services.record_inbound(message("kept out", 1), uow).duplicate


@pytest.mark.postgres
def test_postgres_readiness_probe_keeps_the_prepared_statements(prepared_runtime) -> None:
    """A load balancer's /readyz every few seconds must not make psycopg drop the webhook's
    statements (it deallocates them all on a rollback)."""
    from web.app import create_app

    runtime = prepared_runtime
    client = create_app(runtime.settings, runtime).test_client()
    assert _webhook(runtime, 1)
    assert client.get("/readyz").status_code == 200
    assert any(sql.startswith("INSERT INTO messages") for sql in _prepared_statements(runtime))
