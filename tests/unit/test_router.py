"""The router with its first handlers; state in fakeredis (unit tests only)."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import fakeredis
from redis import Redis

from bot.handlers import Fallback, default_handlers
from bot.router import Context, Router
from bot.state import ConversationStates
from channels import base
from channels.base import InboundMessage
from config.content import load_content

CONTENT = load_content()


def inbound(kind: str = base.TEXT, text: str = "") -> InboundMessage:
    return InboundMessage("wechat", "gh", "oUser", "msg:1", kind, datetime.now(timezone.utc), text)


def router(redis: Redis | None = None, handlers=None) -> Router:  # type: ignore[no-untyped-def]
    states = ConversationStates(redis or fakeredis.FakeRedis(), ttl=60)
    return Router(handlers or default_handlers(), CONTENT, states)


def test_welcome_faq_non_text_and_silence() -> None:
    r = router()
    assert r.answer(inbound(base.SUBSCRIBE), 1, 1) == CONTENT.welcome
    assert "7 天" in r.answer(inbound(text="怎么退货"), 1, 1)
    assert "图片" in r.answer(inbound(base.IMAGE), 1, 1)
    assert r.answer(inbound(base.UNSUBSCRIBE), 1, 1) == ""
    assert r.answer(inbound(base.UNKNOWN), 1, 1) == ""


def test_fallback_echoes_briefly_and_counts_misses_in_state() -> None:
    redis = fakeredis.FakeRedis()
    r = router(redis)
    reply = r.answer(inbound(text="x" * 500), 7, 1)
    assert "x" * 30 + "…" in reply and "x" * 31 not in reply
    r.answer(inbound(text="还是听不懂"), 7, 1)
    assert ConversationStates(redis, 60).load(7) == {"misses": 2}
    assert redis.ttl(ConversationStates.key(7)) > 0


def test_emoji_only_and_blank_text() -> None:
    r = router()
    assert "🙂" in r.answer(inbound(text="🙂🙂"), 1, 1)
    assert r.answer(inbound(text="   "), 1, 1)  # treated as non-text, still answered


class Broken:
    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return True

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        raise ZeroDivisionError("bug")


def test_a_broken_handler_answers_politely_and_logs_the_conversation(caplog) -> None:
    with caplog.at_level(logging.ERROR):
        assert router(handlers=[Broken(), Fallback()]).answer(inbound(text="hi"), 42, 1) == CONTENT.busy
    assert "conversation 42" in caplog.text


def test_redis_down_answers_stateless() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert "听懂" in router(dead).answer(inbound(text="嗯"), 1, 1)
