"""The bot's rules, in the order the router tries them."""
from __future__ import annotations

from bot import flows, policy
from bot.router import Context, Handler, is_cancel
from channels import base
from channels.base import InboundMessage
from crm_store import membership
from nlp.text import find_terms

# Events that need no answer: WeChat shows nothing for them, or the customer already left.
SILENT_KINDS = frozenset({base.UNSUBSCRIBE, base.MENU_VIEW, base.LOCATION_REPORT, base.SCAN, base.UNKNOWN})
KIND_NAMES = {base.IMAGE: "图片", base.VOICE: "语音", base.VIDEO: "视频", base.LOCATION: "位置",
              base.LINK: "链接", base.MENU_CLICK: "菜单选择"}


class AgentOwned:
    """While a hand-off ticket is open the bot stays quiet: the message is stored, the agent
    reads it in the console and answers."""

    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return msg.kind != base.SUBSCRIBE and ctx.agent_owned

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        return ""


class Welcome:
    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return msg.kind == base.SUBSCRIBE

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        ctx.state.clear()  # a new follow starts a new conversation with the bot
        return ctx.say("welcome")


class Silent:
    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return msg.kind in SILENT_KINDS

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        return ""


class HandOff:
    """人工/客服, a strongly negative message, or one miss too many: queue for an agent."""

    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        if "flow" in ctx.state:
            # Inside a flow only a short request counts ("人工", "转客服"): "客服很耐心" is an answer.
            intent = ctx.intent
            return intent is not None and intent.name == "human" and len(ctx.text) - len(intent.keyword or "") <= 2
        if ctx.intent is not None:
            return ctx.intent.name == "human"
        return ctx.mood.strong  # an angry message that is not a complaint we can take in the flow

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        ctx.state.clear()
        ticket = flows.open_ticket(ctx, "handoff", ctx.text or "转人工")
        return ctx.say("handoff_queued", reference=ticket.reference,
                       response_time=policy.response_time_text(ticket.priority, ctx.content.rules))


class CancelOutsideFlow:
    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return bool(ctx.text) and is_cancel(ctx.text, ctx.content.rules.cancel_words)

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        return ctx.say("nothing_to_cancel")


class MemberSelfService:
    """Points balance, points history, level and benefits; binding comes first."""

    INTENTS = ("points_balance", "points_history", "member_level")

    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return ctx.intent is not None and ctx.intent.name in self.INTENTS

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        member_id = membership.member_id_of(ctx.customer_id, ctx.uow)
        if member_id is None:
            return ctx.say("need_member")
        if ctx.intent.name == "points_history":
            limit = ctx.content.rules.limits["points_history_entries"]
            entries = membership.history(member_id, ctx.uow, limit)
            if not entries:
                return ctx.say("points_history_empty")
            lines = "\n".join(f"{e.created_at:%m-%d} {e.points:+d} {e.reason}" for e in entries)
            return ctx.say("points_history", lines=lines)
        standing = membership.standing(member_id, ctx.content.rules.levels, ctx.uow)
        if ctx.intent.name == "points_balance":
            return ctx.say("points_balance", balance=standing.balance)
        following = (ctx.say("level_next", points=standing.points_to_next, next_level=standing.next_level.name)
                     if standing.next_level else ctx.say("level_top"))
        return ctx.say("member_level", level=standing.level.name, benefits="、".join(standing.level.benefits),
                       next=following)


class Faq:
    """Answers a text that contains one of an FAQ entry's keywords (first entry wins)."""

    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return bool(ctx.text) and self._entry(ctx) is not None

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        ctx.state.pop("misses", None)
        return self._entry(ctx).answer

    @staticmethod
    def _entry(ctx: Context):  # type: ignore[no-untyped-def]
        return next((e for e in ctx.content.faq if find_terms(ctx.text, e.keywords)), None)


class NonText:
    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return not ctx.text or msg.kind not in (base.TEXT, base.VOICE)

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        return ctx.say("non_text", kind=KIND_NAMES.get(msg.kind, "消息"))


class Fallback:
    """Last rule: a short echo with suggestions; at N misses, offer a human; after that, hand off."""

    MAX_ECHO = 30

    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return True

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        misses = int(ctx.state.get("misses", 0)) + 1
        ctx.state["misses"] = misses
        limit = ctx.content.rules.limits["misses_before_human"]
        if misses > limit:
            return HandOff().handle(msg, ctx)
        if misses == limit:
            return ctx.say("offer_human")
        shown = ctx.text if len(ctx.text) <= self.MAX_ECHO else ctx.text[: self.MAX_ECHO] + "…"
        return ctx.say("fallback", text=shown)


def default_handlers() -> list[Handler]:
    return [AgentOwned(), Welcome(), Silent(), HandOff(), flows.FlowHandler(), CancelOutsideFlow(),
            MemberSelfService(), Faq(), NonText(), Fallback()]
