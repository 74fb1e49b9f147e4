"""Typed settings built from the environment (prefix ``CRMBOT_``).

This is the configuration contract of DESIGN.md: every setting has a working laptop default
except where a value can only come from the operator, and a missing or malformed value stops
start-up with one line naming it (``ConfigError``). Nothing else in the project reads
``os.environ``; the ``Settings`` object is passed down explicitly.
"""
from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from typing import Mapping

PREFIX = "CRMBOT_"
WECHAT_PUBLIC_API = "https://api.weixin.qq.com/cgi-bin/"
WEIBO_PUBLIC_API = "https://api.weibo.com/2/"
TWITTER_PUBLIC_API = "https://api.twitter.com/"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it in one line."""


@dataclass(frozen=True)
class Settings:
    """Everything the processes of the service need, validated once at start-up."""

    var_dir: Path
    database_url: str
    redis_url: str | None  # None = an embedded Redis server under var_dir
    secret_key: str
    wechat_token: str
    wechat_app_id: str
    wechat_app_secret: str
    wechat_aes_key: str | None  # set = safe mode (AES)
    wechat_api_base: str
    wechat_timestamp_window: int = 300
    max_body_bytes: int = 64 * 1024
    conversation_ttl: int = 30 * 60
    weibo_access_token: str | None = None
    weibo_uid: str | None = None
    weibo_api_base: str = WEIBO_PUBLIC_API
    twitter_bearer_token: str | None = None
    twitter_user_id: str | None = None
    twitter_api_base: str = TWITTER_PUBLIC_API
    twitter_consumer_key: str | None = None
    twitter_consumer_secret: str | None = None
    twitter_access_token: str | None = None
    twitter_access_token_secret: str | None = None
    log_level: str = "INFO"
    # The brand's days (KPIs per day): an IANA zone name. The store keeps UTC.
    timezone: str = "Asia/Shanghai"
    # PostgreSQL: runs of a statement on a connection before psycopg prepares it on the server;
    # None = never (a transaction pooler such as PgBouncer's transaction mode needs that).
    database_prepare_threshold: int | None = 5
    # A bearer token that lets a scraper off this host read /metrics; None = loopback only.
    metrics_token: str | None = None

    @property
    def wechat_safe_mode(self) -> bool:
        return self.wechat_aes_key is not None


def _url(name: str, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{PREFIX}{name} must be an http(s) URL, got {value!r}")
    return value if value.endswith("/") else value + "/"


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{PREFIX}{name} must be between {low} and {high}, got {number}")
    return number


def _aes_key(value: str) -> str:
    # WeChat's EncodingAESKey is 43 characters of base64 without the trailing '='.
    try:
        key = base64.b64decode(value + "=", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(value) != 43 or len(key) != 32:
        raise ConfigError(f"{PREFIX}WECHAT_AES_KEY must be the 43-character EncodingAESKey")
    return value


def _database_url(value: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError(f"{PREFIX}DATABASE_URL is not a database URL: {value!r}") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"{PREFIX}DATABASE_URL must be sqlite or postgresql, got {url.get_backend_name()!r}")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(f"{PREFIX}TIMEZONE must be an IANA time zone such as Asia/Shanghai, got {value!r}") from None
    return value


def _prepare_threshold(value: str) -> int | None:
    if value.lower() == "none":
        return None
    return _int("DATABASE_PREPARE_THRESHOLD", value, 0, 1_000_000)


def _redis_url(value: str) -> str:
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{PREFIX}REDIS_URL must start with redis://, rediss:// or unix://, got {value!r}")
    return value


def _secret_key(var_dir: Path) -> str:
    # A laptop default that survives restarts without being committed anywhere.
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings; raise ``ConfigError`` naming the first bad value."""
    env = {k[len(PREFIX):]: v for k, v in (os.environ if environ is None else environ).items()
           if k.startswith(PREFIX)}

    def get(name: str) -> str | None:
        value = env.get(name)
        return value.strip() if value is not None and value.strip() else None

    var_dir = Path(get("VAR_DIR") or "var").resolve()
    secret_key = get("SECRET_KEY")
    if secret_key is not None and len(secret_key) < 16:
        raise ConfigError(f"{PREFIX}SECRET_KEY must be at least 16 characters")
    aes_key = get("WECHAT_AES_KEY")
    log_level = (get("LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    redis_url = get("REDIS_URL")
    metrics_token = get("METRICS_TOKEN")
    if metrics_token is not None and (len(metrics_token) < 16 or not metrics_token.isascii()):
        raise ConfigError(f"{PREFIX}METRICS_TOKEN must be at least 16 ASCII characters")
    return Settings(
        var_dir=var_dir,
        database_url=_database_url(get("DATABASE_URL") or f"sqlite:///{var_dir / 'crmbot.db'}"),
        redis_url=_redis_url(redis_url) if redis_url else None,
        secret_key=secret_key or _secret_key(var_dir),
        # Laptop defaults so `crmbot run` + `crmbot chat` work out of the box; a real account sets them.
        wechat_token=get("WECHAT_TOKEN") or "crmbot-dev-token",
        wechat_app_id=get("WECHAT_APP_ID") or "wxcrmbotdev00000",
        wechat_app_secret=get("WECHAT_APP_SECRET") or "crmbot-dev-secret",
        wechat_aes_key=_aes_key(aes_key) if aes_key else None,
        wechat_api_base=_url("WECHAT_API_BASE", get("WECHAT_API_BASE") or WECHAT_PUBLIC_API),
        wechat_timestamp_window=_int("WECHAT_TIMESTAMP_WINDOW", get("WECHAT_TIMESTAMP_WINDOW") or "300", 1, 86400),
        max_body_bytes=_int("MAX_BODY_BYTES", get("MAX_BODY_BYTES") or str(64 * 1024), 1024, 10 * 1024 * 1024),
        conversation_ttl=_int("CONVERSATION_TTL", get("CONVERSATION_TTL") or "1800", 10, 30 * 86400),
        weibo_access_token=get("WEIBO_ACCESS_TOKEN"),
        weibo_uid=get("WEIBO_UID"),
        weibo_api_base=_url("WEIBO_API_BASE", get("WEIBO_API_BASE") or WEIBO_PUBLIC_API),
        twitter_bearer_token=get("TWITTER_BEARER_TOKEN"),
        twitter_user_id=get("TWITTER_USER_ID"),
        twitter_api_base=_url("TWITTER_API_BASE", get("TWITTER_API_BASE") or TWITTER_PUBLIC_API),
        twitter_consumer_key=get("TWITTER_CONSUMER_KEY"),
        twitter_consumer_secret=get("TWITTER_CONSUMER_SECRET"),
        twitter_access_token=get("TWITTER_ACCESS_TOKEN"),
        twitter_access_token_secret=get("TWITTER_ACCESS_TOKEN_SECRET"),
        log_level=log_level,
        timezone=_timezone(get("TIMEZONE") or "Asia/Shanghai"),
        database_prepare_threshold=_prepare_threshold(get("DATABASE_PREPARE_THRESHOLD") or "5"),
        metrics_token=metrics_token,
    )
