"""The conversation router: handlers tried in order, the first match answers.

A handler has ``matches(msg, ctx)`` and ``handle(msg, ctx)``; the router returns the reply text
and never sends anything itself. One error handler turns any handler failure into a polite
answer, logged with the conversation id. Handlers change the store through ``ctx.uow``, inside
the transaction that records the message, so a message and its effects land together; so does
the conversation's state, which the store keeps with the customer's channel identity.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from bot.otp import OneTimeCodes
from channels import base
from channels.base import InboundMessage
from config.content import BotContent
from crm_store.services import RecordedInbound, save_conversation_state
from crm_store.uow import UnitOfWork
from nlp.intent import Intent, rule_intent
from nlp.sentiment import Sentiment, lexicon_sentiment as sentiment
from nlp.text import normalize

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What a handler may read and change: ``state`` is saved after the handler returns."""

    conversation_id: int
    customer_id: int
    agent_owned: bool
    content: BotContent
    uow: UnitOfWork
    codes: OneTimeCodes
    text: str = ""  # the message's text, cut to the configured length
    intent: Intent | None = None
    mood: Sentiment = field(default_factory=lambda: Sentiment("neu", 0.5))
    state: dict[str, Any] = field(default_factory=dict)
    now: float = field(default_factory=time.time)

    def say(self, name: str, **values: Any) -> str:
        return self.content.say(name, **values)


class Handler(Protocol):
    """One rule of the bot."""

    def matches(self, msg: InboundMessage, ctx: Context) -> bool: ...

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        """The reply text; an empty text means no reply."""
        ...


def understand(msg: InboundMessage, content: BotContent) -> tuple[str, Intent | None, Sentiment]:
    """Text (cut to length), intent (menu key or keywords) and sentiment of a message."""
    limit = content.rules.limits["max_text_chars"]
    # Only what the customer typed (or said) is read; a link's title or a place name is not a request.
    text = msg.text.strip()[:limit] if msg.kind in (base.TEXT, base.VOICE) else ""
    menu_intent = content.rules.menu.get(str(msg.attributes.get("key") or ""))
    if menu_intent:
        return text, Intent(menu_intent, 1.0, None), Sentiment("neu", 0.5)
    return text, rule_intent(text, content.rules.intents), sentiment(text)


class HandlerFailed(Exception):
    """A handler broke. What it half-wrote must be undone; ``reply`` is the polite answer."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class Router:
    """Answers one inbound message from rules and the conversation's state."""

    def __init__(self, handlers: Sequence[Handler], content: BotContent, codes: OneTimeCodes, state_ttl: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.handlers = tuple(handlers)
        self.content = content
        self.codes = codes
        self.state_ttl = state_ttl  # seconds a conversation's state lives after its last change
        self.clock = clock

    def answer(self, msg: InboundMessage, recorded: RecordedInbound, uow: UnitOfWork) -> str:
        conversation_id = recorded.conversation_id
        loaded = recorded.state
        text, intent, mood = understand(msg, self.content)
        ctx = Context(conversation_id, recorded.customer_id, recorded.agent_owned, self.content, uow, self.codes,
                      text, intent, mood, dict(loaded), self.clock())
        notice = self._expire_flow(ctx)
        try:
            reply = next((h.handle(msg, ctx) for h in self.handlers if h.matches(msg, ctx)), "")
        except Exception as exc:  # noqa: BLE001 - one broken rule must not leave the customer unanswered
            log.exception("conversation %s: handler failed, answering with the fallback", conversation_id)
            raise HandlerFailed(self.content.say("busy")) from exc
        if ctx.state != loaded:  # most messages change nothing: save the write
            save_conversation_state(conversation_id, ctx.state, uow, self.state_ttl)
        return "\n".join(part for part in (notice, reply) if part)

    def _expire_flow(self, ctx: Context) -> str:
        flow = ctx.state.get("flow")
        if flow and ctx.now - flow.get("at", 0) > self.content.rules.limits["flow_timeout_seconds"]:
            del ctx.state["flow"]
            return ctx.say("flow_timed_out")
        return ""


def is_cancel(text: str, cancel_words: Sequence[str]) -> bool:
    """Only a short message that is a cancel word counts: "取消订单怎么操作" is a question."""
    clean = "".join(ch for ch in normalize(text) if ch.isalnum())
    return any(clean == w or (clean.startswith(w) and len(clean) <= len(w) + 2) for w in cancel_words)
