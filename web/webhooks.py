"""Webhook routes, one per push channel of the registry: verify -> parse -> record -> answer.

The views are thin: a channel verifies and parses, ``bot.inbox.receive`` records and answers.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request

from bot.inbox import receive
from channels.base import MalformedMessage, SignatureError
from channels.registry import WEBHOOK_CHANNELS, WebhookChannel
from config import Settings
from crm_store.services import ReplayedPush
from web.context import runtime_of
from web.extensions import limiter
from workers import metrics

log = logging.getLogger(__name__)


@limiter.request_filter
def _platform_push() -> bool:
    """The platforms' webhooks are never rate limited: a platform answered 429 retries and then
    drops the message. Filtered here, before Flask-Limiter looks for limits that could apply
    (the webhook has none), which it would otherwise do on every push."""
    return request.blueprint == "webhooks"


def _plain(text: str, status: int) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def blueprint(settings: Settings) -> Blueprint:
    bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
    for name, make_channel in WEBHOOK_CHANNELS.items():
        channel = make_channel(settings)
        bp.add_url_rule(f"/{name}", f"{name}_verify", _verify_view(channel), methods=["GET"])
        bp.add_url_rule(f"/{name}", f"{name}_push", _push_view(channel), methods=["POST"])
    return bp


def _verify_view(channel: WebhookChannel):  # type: ignore[no-untyped-def]
    def verify() -> Response:
        try:
            return _plain(channel.verify_url(request.args), 200)
        except SignatureError as exc:
            log.warning("%s webhook verification refused from %s: %s", channel.name, request.remote_addr, exc)
            return _plain("forbidden", 403)
    return verify


def _push_view(channel: WebhookChannel):  # type: ignore[no-untyped-def]
    @metrics.WEBHOOK_SECONDS.labels(channel=channel.name).time()
    def push() -> Response:
        body = request.get_data(cache=False)  # a Content-Length over MAX_CONTENT_LENGTH -> 413 unread
        if request.content_length is None and len(body) >= current_app.config["MAX_CONTENT_LENGTH"]:
            abort(413)  # a chunked body is read up to the limit and cut there: more was sent
        try:
            inbound = channel.parse(request.args, body)
        except SignatureError as exc:
            log.warning("%s webhook refused from %s: %s", channel.name, request.remote_addr, exc)
            return _plain("forbidden", 403)
        except MalformedMessage as exc:
            log.warning("%s webhook bad payload from %s: %s", channel.name, request.remote_addr, exc)
            return _plain(f"bad request: {exc}", 400)
        rt = runtime_of(current_app)
        try:
            reply = receive(inbound, rt.uow, rt.router)
        except ReplayedPush:
            log.warning("%s webhook refused from %s: a signed request reused with another payload",
                        channel.name, request.remote_addr)
            return _plain("forbidden", 403)
        metrics.MESSAGES.labels(channel=channel.name, direction="in").inc()
        if reply:
            metrics.MESSAGES.labels(channel=channel.name, direction="out").inc()
        return Response(channel.render_reply(inbound, reply, request.args), mimetype="application/xml")
    return push
