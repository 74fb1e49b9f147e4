"""The web chat widget: ``/chat``, a page anyone can open or a brand can embed, talking to the same
router as WeChat (``bot.inbox.receive``) through its own channel, ``channels.webchat``.

- ``GET /chat``: the page.
- ``POST /chat/messages`` ``{"text", "client_id"}``: record and answer one message, like the
  WeChat webhook; ``{"reply", "messages"}`` (the stored message and its reply).
- ``GET /chat/messages?after=<cursor>``: this visitor's messages after the cursor, for the page
  to poll; ``{"messages", "cursor", "more"}``.

The visitor is whoever the signed session cookie names; nothing in a URL or a body can name
another visitor. POSTs carry the page's CSRF token (``X-CSRFToken``) and are rate limited.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, make_response, request, session
from flask_limiter.util import get_remote_address
from sqlalchemy import Row, or_, select
from werkzeug.exceptions import BadRequest

from bot.inbox import receive
from channels import webchat
from crm_store import models, services
from crm_store.models import ChannelIdentity, Conversation, Message, as_utc, utcnow
from web.context import runtime_of
from web.extensions import limiter
from workers import metrics

bp = Blueprint("chat", __name__)

POLL_LIMIT = 100  # messages per poll; ``more`` says there are others after them
# The cursor stays before messages younger than this: a transaction that took an id earlier may
# commit after a later one was read (PostgreSQL hands ids out at insert, not at commit), and a
# poll that had moved past its id would never see it. Re-reading a few seconds is cheap.
SETTLE = timedelta(seconds=5)
_SHOWN = (models.PASSIVE, models.SENT)  # outbound messages the page may show (channels.webchat)
_PENDING = (models.QUEUED, models.SENDING)  # may still become SENT: the cursor waits for them
# The page is our own markup and files; it may be framed by any site (embedding is its purpose).
_PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'")

_COLUMNS = (Message.id, Message.direction, Message.author, Message.text, Message.delivery,
            Message.external_id, Message.created_at)
_OF_VISITOR = (select(*_COLUMNS)
               .join(Conversation, Conversation.id == Message.conversation_id)
               .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
               .where(ChannelIdentity.channel == webchat.NAME, ChannelIdentity.account == webchat.ACCOUNT))


def _visitor_key() -> str:
    """Rate-limit key: the visitor when the session names one, else the address."""
    visitor = webchat.visitor_id(session, create=False)
    return f"webchat:{visitor}" if visitor else f"webchat-ip:{get_remote_address()}"


def _author(stored: str) -> str:
    # Staff names stay inside: the visitor sees that a person answered, not their login.
    return "agent" if stored.startswith("agent") else stored


def _as_json(row: Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "direction": row.direction, "author": _author(row.author), "text": row.text,
            "delivery": row.delivery, "client_id": row.external_id if row.direction == "in" else None,
            "at": as_utc(row.created_at).isoformat().replace("+00:00", "Z")}


def _json(body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"  # one visitor's conversation: never in a shared cache
    return response


@bp.get("/chat")
def page() -> Response:
    webchat.visitor_id(session)  # the identity (and the CSRF token) go out in the cookie now
    greeting = runtime_of(current_app).content.say("greeting")  # the operator's text (config/replies.yaml)
    # Rendered without the app's context processors: the page needs none of them, and Flask-Login's
    # would load the signed-in staff user (a store read) for every visitor of a staff browser.
    page = current_app.jinja_env.get_template("chat/chat.html")
    response = make_response(page.render(greeting=greeting, max_text=webchat.MAX_TEXT))
    response.headers["Content-Security-Policy"] = _PAGE_POLICY
    response.headers["Cache-Control"] = "no-store"  # the page carries this session's CSRF token
    return response


@bp.post("/chat/messages")
@limiter.limit("30 per minute", key_func=_visitor_key)
@limiter.limit("300 per minute")  # per address: a script dropping its cookie gets a new visitor each time
def post_message() -> Response:
    """Record the visitor's message and answer it, exactly as the WeChat webhook does (same
    ``receive``: one transaction, a retry with the same ``client_id`` gets the stored reply);
    a store outage is the app's 503 with nothing stored."""
    visitor = webchat.visitor_id(session)
    payload = request.get_json(silent=True)
    try:
        inbound = webchat.parse(visitor or "", payload, raw=request.get_data(as_text=True))
    except webchat.InvalidChatMessage as exc:
        raise BadRequest(str(exc)) from None
    rt = runtime_of(current_app)
    reply = receive(inbound, rt.uow, rt.router)
    metrics.MESSAGES.labels(channel=webchat.NAME, direction="in").inc()
    if reply:
        metrics.MESSAGES.labels(channel=webchat.NAME, direction="out").inc()
    with rt.uow() as uow:
        recorded = services.find_recorded(inbound, uow)
        if recorded is None:  # receive commits before it returns; this cannot be
            raise RuntimeError(f"web chat message {inbound.dedupe_key} not found after it was recorded")
        rows = uow.execute(select(*_COLUMNS).where(
            or_(Message.id == recorded.message_id, Message.reply_to_id == recorded.message_id)
        ).order_by(Message.id)).all()
    return _json({"reply": reply, "messages": [_as_json(row) for row in rows]})


@bp.get("/chat/messages")
# The page polls every 2 s (30 a minute); this leaves room for catching up, not for scraping.
@limiter.limit("120 per minute", key_func=_visitor_key)
def messages() -> Response:
    """The visitor's messages after ``after`` (the ``cursor`` of the last answer; 0 for all).

    Inbound messages and outbound ones the page may show (passive replies, sent messages); the
    ``cursor`` stops before any outbound message still waiting to be sent, and before the last few
    seconds, so a message that becomes visible late is still found. The page drops ids it has."""
    try:
        after = int(request.args.get("after", "0"))
    except ValueError:
        raise BadRequest("after must be a message id (a whole number)") from None
    if after < 0:
        raise BadRequest("after must be a message id (a whole number)")
    visitor = webchat.visitor_id(session, create=False)
    if visitor is None:  # no conversation yet: nothing to show, and no identity made for a poll
        return _json({"messages": [], "cursor": after, "more": False})
    with runtime_of(current_app).uow() as uow:
        rows = uow.execute(_OF_VISITOR.where(ChannelIdentity.external_id == visitor, Message.id > after)
                           .order_by(Message.id).limit(POLL_LIMIT)).all()
    settled_before, cursor, waiting = utcnow() - SETTLE, after, False
    for row in rows:
        waiting = waiting or row.delivery in _PENDING or as_utc(row.created_at) > settled_before
        if not waiting:
            cursor = row.id
    shown = [_as_json(row) for row in rows if row.direction == "in" or row.delivery in _SHOWN]
    return _json({"messages": shown, "cursor": cursor, "more": len(rows) == POLL_LIMIT})
