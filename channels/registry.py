"""The channels that receive webhooks, keyed by the name in ``/webhooks/<name>``.

Adding a push channel is one module and one entry here; the web layer registers a route per entry.
"""
from __future__ import annotations

from typing import Callable, Protocol, Mapping

from config import Settings
from channels.base import InboundMessage
from channels.wechat import WeChatChannel


class WebhookChannel(Protocol):
    """What the generic webhook view needs from a push channel."""

    name: str

    def verify_url(self, args: Mapping[str, str]) -> str: ...
    def parse(self, args: Mapping[str, str], body: bytes) -> InboundMessage: ...
    def render_reply(self, inbound: InboundMessage, text: str, args: Mapping[str, str]) -> str: ...


def _wechat(settings: Settings) -> WeChatChannel:
    return WeChatChannel(settings.wechat_token, settings.wechat_app_id, settings.wechat_aes_key,
                         settings.wechat_timestamp_window)


WEBHOOK_CHANNELS: dict[str, Callable[[Settings], WebhookChannel]] = {"wechat": _wechat}
