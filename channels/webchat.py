"""Web chat (``/chat``): a visitor talks to the brand from a browser, without a platform account.

A visitor's identity is a random id the server makes and keeps in the visitor's signed session
cookie; the browser never chooses it, so no visitor can speak as or read for another. Each
message carries an id the browser made for it (a UUID), so a POST retried after a lost answer
lands once.

There is no platform to push to: the open page fetches its messages from the store every few
seconds. ``WebChatSender`` is the outbox's sender for this channel; see its docstring for what
"sent" means here.
"""
from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timezone
from typing import Any, MutableMapping

from channels import base
from channels.base import InboundMessage, OutboundMessage

NAME = "webchat"
ACCOUNT = "web"  # one web chat per brand; the identity key is (webchat, web, visitor id)
SESSION_KEY = "webchat_visitor"
MAX_TEXT = 2000  # characters, after stripping

_VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)
_CLIENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # a UUID
# Control characters a chat line has no use for; PostgreSQL cannot even store NUL in text.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class InvalidChatMessage(base.MalformedMessage, ValueError):
    """What a visitor posted cannot be taken as a chat message; the reason is fit to show them."""


def new_visitor_id() -> str:
    return secrets.token_urlsafe(16)


def is_visitor_id(value: Any) -> bool:
    return isinstance(value, str) and _VISITOR_ID.fullmatch(value) is not None


def visitor_id(session: MutableMapping[str, Any], create: bool = True) -> str | None:
    """The visitor's id kept in ``session`` (the signed cookie); a new one when there is none and
    ``create``. A value that is not one of ours (a tampered cookie cannot be, it is signed; an
    old format could be) is replaced."""
    found = session.get(SESSION_KEY)
    if is_visitor_id(found):
        return found
    if not create:
        return None
    session[SESSION_KEY] = made = new_visitor_id()
    return made


def parse(visitor: str, payload: Any, raw: str = "", now: datetime | None = None) -> InboundMessage:
    """A visitor's posted ``{"text", "client_id"}`` as an ``InboundMessage``; ``InvalidChatMessage``
    when it is not one. The text is kept as typed, less surrounding blanks and control characters;
    the dedupe key is the visitor's and the browser's message id together, so one visitor's id
    can never find another visitor's message."""
    if not is_visitor_id(visitor):
        raise InvalidChatMessage("unknown visitor")
    if not isinstance(payload, dict):
        raise InvalidChatMessage('the body must be a JSON object {"text": ..., "client_id": ...}')
    client_id, text = payload.get("client_id"), payload.get("text")
    if not isinstance(client_id, str) or _CLIENT_ID.fullmatch(client_id.lower()) is None:
        raise InvalidChatMessage("client_id must be a UUID made by the page for this message")
    if not isinstance(text, str):
        raise InvalidChatMessage("text must be a string")
    text = _CONTROL.sub("", text).strip()
    if not text:
        raise InvalidChatMessage("text is empty")
    if len(text) > MAX_TEXT:
        raise InvalidChatMessage(f"text is longer than {MAX_TEXT} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON) is not text
        raise InvalidChatMessage("text is not valid Unicode") from None
    client_id = client_id.lower()
    return InboundMessage(
        channel=NAME, account=ACCOUNT, external_user_id=visitor, dedupe_key=f"{visitor}:{client_id}",
        kind=base.TEXT, sent_at=now or datetime.now(timezone.utc), text=text, external_message_id=client_id,
        raw=raw or json.dumps({"text": text, "client_id": client_id}, ensure_ascii=False))


class WebChatSender:
    """The outbox's sender for web chat.

    Delivery is pulled: the open page asks for its visitor's messages every few seconds, and is
    shown an outbound message once it is ``passive`` (the answer to its own POST) or ``sent``.
    So there is nothing to call here: the send job moving the message to ``sent`` is what makes
    it available, and the page shows it on its next poll (within seconds while it is open, or
    with the history when the visitor comes back in the same browser session). A message the
    outbox has not sent yet (queued, sending) is not shown, just as on any other channel.
    """

    name = NAME

    def send(self, message: OutboundMessage) -> None:
        if message.channel != NAME or message.account != ACCOUNT or not is_visitor_id(message.external_user_id):
            # Not a visitor this module made: retrying will not change that.
            raise base.RecipientUnreachable(
                f"not a web chat visitor: {message.channel}/{message.account}/{message.external_user_id}")
