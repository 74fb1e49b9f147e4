"""``GET /metrics``: the service's Prometheus metrics (``workers.metrics``), for a scraper.

Who may read them: a scraper on this host (loopback), or one elsewhere sending
``Authorization: Bearer <CRMBOT_METRICS_TOKEN>``. Everyone else gets 403: the figures say how busy
the brand's channels are and which queues are stuck, which is not for the public internet.
"""
from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Request, Response, current_app, request

from web.context import runtime_of
from workers import metrics

bp = Blueprint("metrics", __name__)

# Headers a reverse proxy adds: a request relayed by one comes from loopback but not from this host.
_RELAYED = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def _from_this_host(req: Request) -> bool:
    if any(header in req.headers for header in _RELAYED):
        return False
    try:
        return ipaddress.ip_address(req.remote_addr or "").is_loopback
    except ValueError:  # a unix socket has no address: not provably local
        return False


def _has_token(req: Request, token: str | None) -> bool:
    given = req.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    return (token is not None and scheme.lower() == "bearer"
            and hmac.compare_digest(value.strip().encode(), token.encode()))


@bp.get("/metrics")
def scrape() -> Response:
    """The text exposition of every metric: 200 for loopback or the bearer token, else 403."""
    rt = runtime_of(current_app)
    if not (_from_this_host(request) or _has_token(request, rt.settings.metrics_token)):
        return Response("forbidden\n", status=403, mimetype="text/plain")
    body, content_type = metrics.exposition(rt.settings.var_dir / "metrics", rt.redis, request.headers.get("Accept"))
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
