"""The conversation router: handlers tried in order, the first match answers.

A handler has ``matches(msg, ctx)`` and ``handle(msg, ctx)``; the router returns the reply text
and never sends anything itself. One error handler turns any handler failure into a polite
answer, logged with the conversation id.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from bot.state import ConversationStates
from channels.base import InboundMessage
from config.content import BotContent

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What a handler may read and change: ``state`` is saved after the handler returns."""

    conversation_id: int
    customer_id: int
    content: BotContent
    state: dict[str, Any] = field(default_factory=dict)


class Handler(Protocol):
    """One rule of the bot."""

    def matches(self, msg: InboundMessage, ctx: Context) -> bool: ...

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        """The reply text; an empty text means no reply."""
        ...


class Router:
    """Answers one inbound message from rules and the conversation's state."""

    def __init__(self, handlers: Sequence[Handler], content: BotContent, states: ConversationStates) -> None:
        self.handlers = tuple(handlers)
        self.content = content
        self.states = states

    def answer(self, msg: InboundMessage, conversation_id: int, customer_id: int) -> str:
        loaded = self.states.load(conversation_id)
        ctx = Context(conversation_id, customer_id, self.content, dict(loaded))
        try:
            reply = next((h.handle(msg, ctx) for h in self.handlers if h.matches(msg, ctx)), "")
        except Exception:  # noqa: BLE001 - one broken rule must not leave the customer unanswered
            log.exception("conversation %s: handler failed, answering with the fallback", conversation_id)
            return self.content.busy
        if ctx.state != loaded:  # most messages change nothing: save the Redis round trip
            self.states.save(conversation_id, ctx.state)
        return reply
