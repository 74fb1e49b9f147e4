"""The first rules of the bot: welcome, FAQ, non-text acknowledgement, fallback.

The next issue adds the member, complaint, lead, hand-off and CSAT flows behind the same interface.
"""
from __future__ import annotations

from channels import base
from channels.base import InboundMessage
from bot.router import Context, Handler

# Events that need no answer: WeChat shows nothing for them, or the customer already left.
SILENT_KINDS = frozenset({base.UNSUBSCRIBE, base.MENU_VIEW, base.LOCATION_REPORT, base.SCAN, base.UNKNOWN})
KIND_NAMES = {base.IMAGE: "图片", base.VOICE: "语音", base.VIDEO: "视频", base.LOCATION: "位置",
              base.LINK: "链接", base.MENU_CLICK: "菜单选择"}


class Welcome:
    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return msg.kind == base.SUBSCRIBE

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        return ctx.content.welcome


class Silent:
    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return msg.kind in SILENT_KINDS

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        return ""


class Faq:
    """Answers a text that contains one of an FAQ entry's keywords (first entry wins)."""

    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return bool(msg.text) and self._entry(msg.text, ctx) is not None

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        entry = self._entry(msg.text, ctx)
        return entry.answer if entry else ""

    @staticmethod
    def _entry(text: str, ctx: Context):  # type: ignore[no-untyped-def]
        lowered = text.lower()
        return next((e for e in ctx.content.faq if any(k in lowered for k in e.keywords)), None)


class NonText:
    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return not msg.text.strip() or msg.kind != base.TEXT and msg.kind != base.VOICE

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        return ctx.content.non_text.format(kind=KIND_NAMES.get(msg.kind, "消息"))


class Fallback:
    """Last rule: echo what we did not understand and suggest what the bot can do."""

    MAX_ECHO = 30

    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return True

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        text = msg.text.strip()
        shown = text if len(text) <= self.MAX_ECHO else text[: self.MAX_ECHO] + "…"
        ctx.state["misses"] = int(ctx.state.get("misses", 0)) + 1
        return ctx.content.fallback.format(text=shown)


def default_handlers() -> list[Handler]:
    return [Welcome(), Silent(), Faq(), NonText(), Fallback()]
