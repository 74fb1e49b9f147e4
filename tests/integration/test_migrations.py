"""Migrations on both stores: the migrated schema is the models' schema, and 0005 keeps old rows."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crm_store.migrate import alembic_config, upgrade
from crm_store.models import Base


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store with no schema at all: a new SQLite file, or a new database on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    server = make_url(request.getfixturevalue("postgres_url"))
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS crmbot_migrations"))
        connection.execute(text("CREATE DATABASE crmbot_migrations"))
    try:
        yield server.set(database="crmbot_migrations").render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text("DROP DATABASE IF EXISTS crmbot_migrations WITH (FORCE)"))
        admin.dispose()


def _differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_migrated_schema_is_the_models_schema(empty_store: str) -> None:
    upgrade(empty_store)
    assert _differences(empty_store) == []


def test_0005_mends_messages_and_downgrades_cleanly(empty_store: str) -> None:
    upgrade(empty_store, revision="0004")
    engine = create_engine(empty_store)
    now = "2026-11-23 12:00:00"
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO customers (id, created_at) VALUES (1, '{now}'), (2, '{now}')"))
        connection.execute(text("INSERT INTO channel_identities (id, customer_id, channel, account, external_id, "
                                f"subscribed, created_at) VALUES (1, 1, 'wechat', 'gh', 'o1', false, '{now}')"))
        connection.execute(text("INSERT INTO conversations (id, customer_id, identity_id, channel, account, status, "
                                f"opened_at) VALUES (1, 1, 1, 'wechat', 'gh', 'open', '{now}')"))
        # Written before 0005: the message names customer 2, its conversation customer 1.
        connection.execute(text("INSERT INTO messages (conversation_id, customer_id, direction, kind, text, "
                                "attributes, raw, dedupe_key, author, attempts, sent_at, created_at) VALUES "
                                f"(1, 2, 'in', 'text', 'hi', '{{}}', '', 'k1', 'customer', 0, '{now}', '{now}')"))
    upgrade(empty_store)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT customer_id, text FROM messages")).all() == [(1, "hi")]
    command.downgrade(alembic_config(empty_store), "0004")
    upgrade(empty_store)  # and up again: the keys the downgrade made are the ones 0005 drops
    with engine.connect() as connection:
        assert connection.execute(text("SELECT customer_id, text FROM messages")).all() == [(1, "hi")]
    engine.dispose()
    assert _differences(empty_store) == []


def test_0016_gives_existing_tickets_an_update_time_and_downgrades_cleanly(empty_store: str) -> None:
    upgrade(empty_store, revision="0015")
    engine = create_engine(empty_store)
    opened = "2026-11-23 12:00:00"
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO customers (id, created_at) VALUES (1, '{opened}')"))
        connection.execute(text(
            "INSERT INTO tickets (reference, customer_id, source, category, priority, status, description, "
            "first_response_due, resolution_due, created_at) VALUES ('T-1', 1, 'complaint', 'quality', 'P2', 'open', "
            f"'', '{opened}', '{opened}', '{opened}')"))
    upgrade(empty_store)
    with engine.connect() as connection:  # no rollup exists yet: its opening time will do
        assert connection.execute(text("SELECT updated_at = created_at FROM tickets")).scalar() in (True, 1)
    command.downgrade(alembic_config(empty_store), "0015")
    upgrade(empty_store)
    engine.dispose()
    assert _differences(empty_store) == []
