"""Multi-turn flows as explicit state tables.

A flow has an entry (called when its intent starts it) and a table of states; each state
handler takes the customer's text and returns a ``Step``: the reply and the next state, or
``None`` when the flow is over. The active flow lives in the conversation state as
``{"name", "step", "slots", "at"}``; cancel words, non-text input and timeouts are handled once,
for every flow, by ``FlowHandler``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from redis.exceptions import RedisError

from bot import policy
from bot.router import Context, is_cancel
from channels.base import InboundMessage
from crm_store import membership, services
from crm_store.models import Ticket, utcnow
from nlp.sentiment import lexicon_sentiment as sentiment

PHONE = re.compile(r"^1[3-9]\d{9}$")
ORDER_NO = re.compile(r"^[a-z0-9-]{6,32}$")
NONE_WORDS = ("无", "没有", "暂无", "没", "no", "none")


@dataclass(frozen=True)
class Step:
    reply: str
    next: str | None = None  # None: the flow is over


StateHandler = Callable[[str, Context, dict[str, Any]], Step]


@dataclass(frozen=True)
class Flow:
    name: str
    entry: Callable[[InboundMessage, Context, dict[str, Any]], Step]
    states: Mapping[str, StateHandler]
    prompts: Mapping[str, str]  # state -> reply name that asks for it (repeated after bad input)


def mobile(text: str) -> str | None:
    """A mainland mobile number from what a customer types (spaces, dashes, +86 allowed)."""
    digits = re.sub(r"[\s\-()]", "", text)
    digits = digits[3:] if digits.startswith("+86") else digits[2:] if digits.startswith("86") and len(digits) == 13 \
        else digits
    return digits if PHONE.match(digits) else None


def masked(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"


# --- member binding -------------------------------------------------------------------------

def _bind_entry(msg: InboundMessage, ctx: Context, slots: dict[str, Any]) -> Step:
    member = membership.member_of(ctx.customer_id, ctx.uow)
    if member is not None:
        return Step(ctx.say("bind_already", card_no=member.card_no))
    phone = mobile(ctx.text)  # "绑卡 13812345678" in one message
    return _send_code(phone, ctx, slots) if phone else Step(ctx.say("bind_ask_phone"), "phone")


def _send_code(phone: str, ctx: Context, slots: dict[str, Any]) -> Step:
    try:
        ctx.codes.issue(ctx.conversation_id, phone)
    except RedisError:
        return Step(ctx.say("bind_unavailable"))
    slots["phone"] = phone
    return Step(ctx.say("bind_code_sent", masked=masked(phone), minutes=ctx.codes.ttl // 60), "code")


def _bind_phone(text: str, ctx: Context, slots: dict[str, Any]) -> Step:
    phone = mobile(text)
    return _send_code(phone, ctx, slots) if phone else Step(ctx.say("bad_phone"), "phone")


def _bind_code(text: str, ctx: Context, slots: dict[str, Any]) -> Step:
    phone = mobile(text)
    if phone:  # the phone answered again (a typo fixed): a new code goes to the new number
        return _send_code(phone, ctx, slots)
    try:
        left = ctx.codes.check(ctx.conversation_id, slots["phone"], re.sub(r"\s", "", text))
    except RedisError:
        return Step(ctx.say("bind_unavailable"))
    if left == 0:
        return Step(ctx.say("bind_code_failed"))
    if left > 0:
        return Step(ctx.say("bind_bad_code", left=left), "code")
    member, _ = membership.bind_member(ctx.customer_id, slots["phone"], ctx.uow)
    ctx.customer_id = member.customer_id
    standing = membership.standing(member.id, ctx.content.rules.levels, ctx.uow)
    return Step(ctx.say("bind_done", card_no=member.card_no, level=standing.level.name, balance=standing.balance))


BIND = Flow("member_bind", _bind_entry, {"phone": _bind_phone, "code": _bind_code},
            {"phone": "bind_ask_phone", "code": "bind_ask_code"})


def _note_request(ctx: Context, slots: dict[str, Any]) -> None:
    """Keep the message that started the flow and the keyword that recognized it."""
    slots["first"] = ctx.text
    slots["keyword"] = ctx.intent.keyword if ctx.intent else None


# --- complaint intake -----------------------------------------------------------------------

def _complaint_entry(msg: InboundMessage, ctx: Context, slots: dict[str, Any]) -> Step:
    _note_request(ctx, slots)
    return Step(ctx.say("complaint_ask_order"), "order")


def _complaint_order(text: str, ctx: Context, slots: dict[str, Any]) -> Step:
    clean = text.strip().lower()
    if clean in NONE_WORDS:
        slots["order_no"] = None
    elif ORDER_NO.match(clean):
        slots["order_no"] = text.strip()
    elif len(clean) > 15:  # they described the problem straight away: take it, without an order
        slots["order_no"] = None
        return _complaint_description(text, ctx, slots)
    else:
        return Step(ctx.say("complaint_bad_order"), "order")
    return Step(ctx.say("complaint_ask_description"), "description")


def _complaint_description(text: str, ctx: Context, slots: dict[str, Any]) -> Step:
    description = "\n".join(part for part in (slots.get("first"), text.strip()) if part)
    ticket = open_ticket(ctx, "complaint", description, slots.get("order_no"))
    return Step(ctx.say("complaint_done", reference=ticket.reference,
                        response_time=policy.response_time_text(ticket.priority, ctx.content.rules)))


def open_ticket(ctx: Context, source: str, description: str, order_no: str | None = None):  # type: ignore[no-untyped-def]
    """A ticket for this conversation, its priority and SLA from the operator's rules."""
    rules = ctx.content.rules
    member_id = membership.member_id_of(ctx.customer_id, ctx.uow)
    level = membership.level(member_id, rules.levels, ctx.uow).name if member_id is not None else None
    priority = policy.priority(description, sentiment(description), level, rules)
    first_due, resolution_due = policy.due_times(priority, utcnow(), rules)
    return services.open_ticket(
        ctx.customer_id, ctx.conversation_id, ctx.uow, source=source,
        category=policy.category(description, rules) if source == "complaint" else "handoff",
        priority=priority, first_response_due=first_due, resolution_due=resolution_due,
        description=description, order_no=order_no)


COMPLAINT = Flow("complaint", _complaint_entry,
                 {"order": _complaint_order, "description": _complaint_description},
                 {"order": "complaint_ask_order", "description": "complaint_ask_description"})


# --- lead capture ---------------------------------------------------------------------------

def _lead_entry(msg: InboundMessage, ctx: Context, slots: dict[str, Any]) -> Step:
    _note_request(ctx, slots)
    return Step(ctx.say("lead_ask_name"), "name")


def _lead_name(text: str, ctx: Context, slots: dict[str, Any]) -> Step:
    name = text.strip()
    if not 1 <= len(name) <= 20 or mobile(name):
        return Step(ctx.say("lead_bad_name"), "name")
    slots["name"] = name
    return Step(ctx.say("lead_ask_phone"), "phone")


def _lead_phone(text: str, ctx: Context, slots: dict[str, Any]) -> Step:
    phone = mobile(text)
    if not phone:
        return Step(ctx.say("bad_phone"), "phone")
    slots["phone"] = phone
    return Step(ctx.say("lead_ask_interest"), "interest")


def _lead_interest(text: str, ctx: Context, slots: dict[str, Any]) -> Step:
    phone = mobile(text)
    if phone:  # the phone answered again: keep the newer one and ask again
        slots["phone"] = phone
        return Step(ctx.say("lead_ask_interest"), "interest")
    conversation = ctx.uow.conversations.get(ctx.conversation_id)
    identity = ctx.uow.identities.get(conversation.identity_id)
    interest = "\n".join(part for part in (slots.get("first"), text.strip()) if part)
    services.capture_lead(ctx.customer_id, ctx.uow, name=slots["name"], phone=slots["phone"], interest=interest,
                          source_channel=conversation.channel, keyword=slots.get("keyword"),
                          campaign=identity.subscribe_scene)
    return Step(ctx.say("lead_done"))


LEAD = Flow("lead", _lead_entry, {"name": _lead_name, "phone": _lead_phone, "interest": _lead_interest},
            {"name": "lead_ask_name", "phone": "lead_ask_phone", "interest": "lead_ask_interest"})


# --- satisfaction (CSAT) after a resolved ticket ---------------------------------------------

def _csat_entry(msg: InboundMessage, ctx: Context, slots: dict[str, Any]) -> Step:
    raise RuntimeError("CSAT starts when a ticket is resolved (start_csat), not from a message")


def _csat_score(text: str, ctx: Context, slots: dict[str, Any]) -> Step:
    digits = re.sub(r"\D", "", text.replace("分", "").replace("星", ""))
    if len(digits) != 1 or not 1 <= int(digits) <= 5:
        return Step(ctx.say("csat_bad"), "score")
    services.record_csat(slots["ticket_id"], int(digits), ctx.uow)
    return Step(ctx.say("csat_ask_comment"), "comment")


def _csat_comment(text: str, ctx: Context, slots: dict[str, Any]) -> Step:
    comment = text.strip()
    if comment.lower() not in NONE_WORDS + ("没有了", "不用"):
        ticket = ctx.uow.session.get(Ticket, slots["ticket_id"])
        services.record_csat(ticket.id, ticket.csat_score, ctx.uow, comment=comment)
    return Step(ctx.say("csat_thanks"))


CSAT = Flow("csat", _csat_entry, {"score": _csat_score, "comment": _csat_comment},
            {"score": "csat_bad", "comment": "csat_ask_comment"})

FLOWS = {flow.name: flow for flow in (BIND, COMPLAINT, LEAD, CSAT)}
STARTED_BY = {"member_bind": BIND, "complaint": COMPLAINT, "lead": LEAD}


def start_csat(state: dict[str, Any], ticket_id: int, now: float) -> None:
    """Put the conversation in the CSAT flow; the question itself is sent by the caller."""
    state["flow"] = {"name": CSAT.name, "step": "score", "slots": {"ticket_id": ticket_id}, "at": now}


class FlowHandler:
    """Runs the active flow (cancel, non-text, the state's handler), or starts one by intent."""

    def matches(self, msg: InboundMessage, ctx: Context) -> bool:
        return "flow" in ctx.state or (ctx.intent is not None and ctx.intent.name in STARTED_BY)

    def handle(self, msg: InboundMessage, ctx: Context) -> str:
        active = ctx.state.get("flow")
        if active is None:
            flow, slots = STARTED_BY[ctx.intent.name], {}
            step = flow.entry(msg, ctx, slots)
        else:
            flow, slots = FLOWS[active["name"]], active["slots"]
            if ctx.text and is_cancel(ctx.text, ctx.content.rules.cancel_words):
                del ctx.state["flow"]
                return ctx.say("cancelled")
            if not ctx.text:
                return ctx.say("text_needed", prompt=ctx.say(flow.prompts[active["step"]]))
            step = flow.states[active["step"]](ctx.text, ctx, slots)
        if step.next is None:
            ctx.state.pop("flow", None)
        else:
            ctx.state["flow"] = {"name": flow.name, "step": step.next, "slots": slots, "at": ctx.now}
        return step.reply
