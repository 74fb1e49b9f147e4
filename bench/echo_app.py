"""The bare baseline of the webhook benchmark: what wechatpy alone costs per message.

Signature check, parse, passive reply; nothing stored, no Redis, no bot. Served the same way
as the service (gunicorn, sync workers), so the ratio of the two throughputs is the price of
recording every message exactly once and answering it from the bot:

    python -m gunicorn -w 2 -b 127.0.0.1:8001 --no-control-socket 'bench.echo_app:create_app()'

The token comes from ``CRMBOT_WECHAT_TOKEN`` (the service's default when unset).
"""
from __future__ import annotations

import os

from flask import Flask, Response, request
from wechatpy import parse_message
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.replies import create_reply
from wechatpy.utils import check_signature

DEFAULT_TOKEN = "crmbot-dev-token"


def create_app(token: str | None = None) -> Flask:
    token = token or os.environ.get("CRMBOT_WECHAT_TOKEN") or DEFAULT_TOKEN
    app = Flask(__name__)

    @app.route("/webhooks/wechat", methods=["GET", "POST"])
    def wechat() -> Response:
        args = request.args
        try:
            check_signature(token, args.get("signature", ""), args.get("timestamp", ""), args.get("nonce", ""))
        except InvalidSignatureException:
            return Response("forbidden", status=403, mimetype="text/plain")
        if request.method == "GET":
            return Response(args.get("echostr", ""), mimetype="text/plain")
        message = parse_message(request.get_data())
        content = getattr(message, "content", "") or ""
        return Response(create_reply("echo: " + content, message).render(), mimetype="application/xml")

    return app
