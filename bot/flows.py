"""Multi-turn flows as explicit tables of steps.

A flow has an entry (called when its action starts it) and a table of steps. Each step asks for
something (its prompt), says whether a message answers it (``accepts``), and handles the answer,
returning a ``Step``: the reply and the next step, or ``None`` when the flow is over. The active
flow lives in the conversation state as ``{"name", "step", "slots", "at"}``.

``run_flow`` treats every flow alike, so none traps the customer: 取消 always leaves; a message
that does not answer the step is read on its own: a question is answered and the prompt
repeated, a clear new subject (a complaint, a human, points ...) leaves the flow for it, and
anything else gets the step's own re-prompt.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping

from redis.exceptions import RedisError

from bot import policy, slots
from bot.router import ACTION_OF_REQUEST, CSAT_FLOW, NEW_SUBJECTS, Context
from bot.understanding import asks, from_models
from channels.base import InboundMessage
from config.content import normalize_command
from config.logs import mask_phones
from nlp.text import normalize

if TYPE_CHECKING:  # the rows the store's service functions return, named for type hints only
    from crm_store.models import Ticket


@dataclass(frozen=True)
class Step:
    reply: str
    next: str | None = None  # None: the flow is over
    reroute: bool = False  # the flow is over and this message was not for it: route it anew


Slots = dict[str, Any]


@dataclass(frozen=True)
class FlowStep:
    prompt: str  # the reply name that asks for this step
    accepts: Callable[[Context, Slots], bool]
    handle: Callable[[Context, Slots], Step]


@dataclass(frozen=True)
class Flow:
    name: str
    entry: Callable[[Context, Slots], Step]
    steps: Mapping[str, FlowStep]


# --- member binding -------------------------------------------------------------------------

def _bind_entry(ctx: Context, s: Slots) -> Step:
    member = ctx.store.member(ctx.customer_id)
    if member is not None:
        return Step(ctx.say("bind_already", card_no=member.card_no))
    phone = slots.mobile(ctx.text)  # "绑卡 13812345678" in one message
    return _send_code(phone, ctx, s) if phone else Step(ctx.say("bind_ask_phone"), "phone")


def _send_code(phone: str, ctx: Context, s: Slots) -> Step:
    try:
        ctx.store.after_commit(ctx.codes.issue(ctx.conversation_id, phone))
    except RedisError:
        return Step(ctx.say("bind_unavailable"))
    s["phone"] = phone
    return Step(ctx.say("bind_code_sent", masked=mask_phones(phone), minutes=ctx.codes.ttl // 60), "code")


def _bind_phone(ctx: Context, s: Slots) -> Step:
    phone = slots.mobile(ctx.text)
    return _send_code(phone, ctx, s) if phone else Step(ctx.say("bad_phone"), "phone")


def _looks_like_code(ctx: Context, s: Slots) -> bool:
    return bool(re.fullmatch(r"\d{4,8}", re.sub(r"\s", "", normalize(ctx.text)))) or bool(slots.mobile(ctx.text))


def _bind_code(ctx: Context, s: Slots) -> Step:
    phone = slots.mobile(ctx.text)
    if phone:  # the phone answered again (a typo fixed): a new code goes to the new number
        return _send_code(phone, ctx, s)
    try:
        left = ctx.codes.check(ctx.conversation_id, s["phone"], re.sub(r"\s", "", normalize(ctx.text)))
    except RedisError:
        return Step(ctx.say("bind_unavailable"))
    if left == 0:
        return Step(ctx.say("bind_code_failed"))
    if left > 0:
        return Step(ctx.say("bind_bad_code", left=left), "code")
    member = ctx.store.bind_member(ctx.customer_id, s["phone"])
    ctx.customer_id = member.customer_id
    standing = ctx.store.standing(member.id, ctx.content.rules.levels)
    return Step(ctx.say("bind_done", card_no=member.card_no, level=standing.level.name, balance=standing.balance))


BIND = Flow("member_bind", _bind_entry, {
    "phone": FlowStep("bind_ask_phone", lambda ctx, s: bool(slots.mobile(ctx.text)), _bind_phone),
    "code": FlowStep("bind_ask_code", _looks_like_code, _bind_code),
})


# --- complaint intake -----------------------------------------------------------------------

# Words that ask to complain without saying what about: "我要投诉" is not yet a description.
_ASKING_TO_COMPLAIN = re.compile(r"投诉|我要|我想|想要|要|想|反馈|一下|你们|你|我|请问|麻烦|怎么|在哪|哪里|帮我|"
                                 r"\b(?:i|want|to|would|like|make|file|a|an|complaint|complain|please|how|do|can|"
                                 r"you|help|me)\b")


def describes_problem(text: str) -> bool:
    """Whether ``text`` says what went wrong, beyond asking to complain."""
    rest = _ASKING_TO_COMPLAIN.sub("", normalize(text).replace("'", " "))
    return len(normalize_command(rest)) >= 2


def _open_complaint(description: str, ctx: Context, s: Slots) -> Step:
    """The ticket opens as soon as the problem is known: the customer's own words are its
    description, and nothing already said is asked again. The order number may follow."""
    ticket = open_ticket(ctx, "complaint", description, s.get("order_no"))
    s["ticket_id"], s["reference"] = ticket.id, ticket.reference
    wait = policy.response_time_text(ticket.priority, ctx.content.rules, ctx.lang)
    opened = ctx.say("complaint_urgent" if ticket.priority == "P1" else "complaint_opened",
                     reference=ticket.reference, response_time=wait)
    if ticket.order_no:
        return Step(opened)
    return Step(f"{opened}\n{ctx.say('complaint_ask_order')}", "order")


def _complaint_described(ctx: Context, s: Slots) -> Step:
    """The flow's entry and its description step: a ticket once the problem is said, unless a
    ticket of the conversation is still with staff ("对，就是这个", "都两天了还没人联系我"):
    then the message goes to that one."""
    s["order_no"] = s.get("order_no") or slots.order_number(ctx.text, ctx.content.rules.order_formats)
    if not describes_problem(ctx.text):
        return Step(ctx.say("complaint_ask_description"), "description")
    if (added := add_to_open_ticket(ctx, s["order_no"])) is not None:
        return Step(added)
    return _open_complaint(ctx.text, ctx, s)


def _gives_order(ctx: Context, s: Slots) -> bool:
    return bool(slots.order_number(ctx.text, ctx.content.rules.order_formats)) or slots.says_none(ctx.text) \
        or slots.mentions_order(ctx.text)


def _complaint_order(ctx: Context, s: Slots) -> Step:
    order_no = slots.order_number(ctx.text, ctx.content.rules.order_formats)
    reference = s["reference"]
    if order_no:
        ctx.store.add_to_ticket(s["ticket_id"], order_no=order_no)
        return Step(ctx.say("complaint_order_added", order_no=order_no, reference=reference))
    if slots.says_none(ctx.text):
        return Step(ctx.say("complaint_done", reference=reference))
    if slots.mentions_order(ctx.text):  # an order number, but not in a form this brand issues
        return Step(ctx.say("complaint_bad_order"), "order")
    if ctx.u.intent == "complaint" or ctx.u.sentiment.label == "neg":  # more about the problem
        ctx.store.add_to_ticket(s["ticket_id"], detail=ctx.text)
        return Step(ctx.say("complaint_detail_added", reference=reference))
    return Step("", reroute=True)  # "好的谢谢": the ticket stands, the message is read on its own


def add_to_open_ticket(ctx: Context, order_no: str | None = None) -> str | None:
    """While a ticket of the conversation is with staff (open or claimed), what the customer
    writes about it goes to that ticket, and the reply tells its reference and the expected
    response time: one case in the queue per problem, not one per message. ``None``: no such
    ticket. An order number is kept only if the ticket has none (the text keeps it anyway)."""
    ticket = ctx.store.open_ticket_in(ctx.conversation_id)
    if ticket is None:
        return None
    if ctx.u.source in ("model", "choice"):  # the customer's own words, not the command 人工
        ctx.store.add_to_ticket(ticket.id, order_no=None if ticket.order_no else order_no, detail=ctx.text)
    return ctx.say("handoff_open_ticket", reference=ticket.reference,
                   response_time=policy.response_time_text(ticket.priority, ctx.content.rules, ctx.lang))


def open_ticket(ctx: Context, source: str, description: str, order_no: str | None = None) -> Ticket:
    """A ticket for this conversation, its category, priority and SLA from the operator's rules."""
    rules = ctx.content.rules
    member_id = ctx.store.member_id(ctx.customer_id)
    level = ctx.store.level(member_id, rules.levels).name if member_id is not None else None
    # The models read this description already when it is the message (or the chosen option's).
    read = ctx.u.source in ("model", "choice") and ctx.u.text == description
    mood = ctx.u.sentiment if read else from_models(description, None, ctx.content).sentiment
    category = policy.category(description, rules)
    priority = policy.priority(description, category, mood, level, rules)
    first_due, resolution_due = policy.due_times(priority, datetime.now(timezone.utc), rules)
    return ctx.store.open_ticket(
        ctx.customer_id, ctx.conversation_id, source=source,
        category=category if source == "complaint" or category in rules.urgent_categories else "handoff",
        priority=priority, first_response_due=first_due, resolution_due=resolution_due,
        description=description, order_no=order_no)


COMPLAINT = Flow("complaint", _complaint_described, {
    "description": FlowStep("complaint_ask_description",
                            lambda ctx, s: describes_problem(ctx.text) and not asks(ctx.text)
                            or ctx.u.intent == "complaint", _complaint_described),
    "order": FlowStep("complaint_ask_order", _gives_order, _complaint_order),
})


# --- lead capture ---------------------------------------------------------------------------

def _lead_fill(ctx: Context, s: Slots, asked: str | None) -> None:
    """Take every slot the message gives: a name, a phone, what they want."""
    name = slots.person_name(ctx.text, whole=asked == "name")
    phone = slots.mobile(ctx.text)
    if name:
        s["name"] = name
    if phone:
        s["phone"] = phone
    if asked == "interest" or (asked is None and ctx.text):  # the message that started it says what they want
        s["interest"] = "\n".join(part for part in (s.get("interest"), ctx.text.strip()) if part)


def _lead_next(ctx: Context, s: Slots) -> Step:
    for slot, prompt in (("name", "lead_ask_name"), ("phone", "lead_ask_phone"), ("interest", "lead_ask_interest")):
        if not s.get(slot):
            return Step(ctx.say(prompt), slot)
    ctx.store.capture_lead(ctx.customer_id, ctx.conversation_id, name=s["name"], phone=s["phone"],
                           interest=s["interest"], keyword=s.get("keyword"))
    return Step(ctx.say("lead_done", who=s["name"], masked=mask_phones(s["phone"])))


def _lead_entry(ctx: Context, s: Slots) -> Step:
    # What made it a lead: the business word said ("加盟"), or the command itself ("合作").
    said = slots.business_terms(ctx.text, ctx.content.rules.business_words)
    command = normalize_command(ctx.text) if ctx.u.source == "command" else ""
    s["keyword"] = said[0] if said else command or None
    _lead_fill(ctx, s, None)
    return _lead_next(ctx, s)


def _lead_step(slot: str, bad: str) -> Callable[[Context, Slots], Step]:
    def handle(ctx: Context, s: Slots) -> Step:
        _lead_fill(ctx, s, slot)
        if not s.get(slot):
            return Step(ctx.say(bad), slot)
        return _lead_next(ctx, s)
    return handle


def _answers_name(ctx: Context, s: Slots) -> bool:
    return bool(slots.person_name(ctx.text, whole=True) or slots.person_name(ctx.text) or slots.mobile(ctx.text))


LEAD = Flow("lead", _lead_entry, {
    "name": FlowStep("lead_ask_name", _answers_name, _lead_step("name", "lead_bad_name")),
    "phone": FlowStep("lead_ask_phone", lambda ctx, s: bool(slots.mobile(ctx.text)), _lead_step("phone", "bad_phone")),
    "interest": FlowStep("lead_ask_interest", lambda ctx, s: not asks(ctx.text) or bool(slots.mobile(ctx.text)),
                         _lead_step("interest", "lead_ask_interest")),
})


# --- satisfaction (CSAT) after a resolved ticket ---------------------------------------------

def _csat_entry(ctx: Context, s: Slots) -> Step:
    raise RuntimeError("CSAT starts when a ticket is resolved (router.start_csat), not from a message")


def _score(text: str) -> int | None:
    digits = re.sub(r"\D", "", normalize(text).replace("分", "").replace("星", ""))
    return int(digits) if len(digits) == 1 and 1 <= int(digits) <= 5 else None


def _csat_score(ctx: Context, s: Slots) -> Step:
    score = _score(ctx.text)
    if score is None:
        return Step(ctx.say("csat_bad"), "score")
    ctx.store.record_csat(s["ticket_id"], score)
    return Step(ctx.say("csat_ask_comment"), "comment")


def _csat_comment(ctx: Context, s: Slots) -> Step:
    if not slots.says_none(ctx.text):
        ctx.store.record_csat(s["ticket_id"], None, comment=ctx.text.strip())
    return Step(ctx.say("csat_thanks"))


CSAT = Flow(CSAT_FLOW, _csat_entry, {
    "score": FlowStep("csat_bad", lambda ctx, s: _score(ctx.text) is not None, _csat_score),
    "comment": FlowStep("csat_ask_comment", lambda ctx, s: ctx.u.source != "command", _csat_comment),
})

FLOWS = {flow.name: flow for flow in (BIND, COMPLAINT, LEAD, CSAT)}
STARTED_BY = {"member_bind": BIND, "complaint": COMPLAINT, "lead": LEAD}


def start_flow(name: str, msg: InboundMessage, ctx: Context) -> str:
    """The action that starts flow ``name``."""
    flow, s = STARTED_BY[name], {}
    return _advance(flow, flow.entry(ctx, s), s, msg, ctx)


def run_flow(msg: InboundMessage, ctx: Context) -> str:
    """The action for a message inside the active flow."""
    active = ctx.state["flow"]
    flow, s = FLOWS[active["name"]], active["slots"]
    step = flow.steps[active["step"]]
    if ctx.u.request == "cancel":
        del ctx.state["flow"]
        return ctx.say("cancelled")
    if ctx.u.source == "none":
        return ctx.say("text_needed", prompt=ctx.say(step.prompt))
    if ctx.u.source in ("command", "menu") or not step.accepts(ctx, s):  # "积分" is never a slot's value
        router = ctx.router
        other = router.decide_by_models(ctx.u) if ctx.u.source == "model" \
            else router.refine(ACTION_OF_REQUEST.get(ctx.u.request, "faq"), ctx.u)
        if other in NEW_SUBJECTS and STARTED_BY.get(other) is not flow:
            del ctx.state["flow"]
            return "\n".join(part for part in (ctx.say("flow_left"), router.actions[other](msg, ctx)) if part)
        hit = router.faq_answers(ctx.u, unprompted=other != "faq") if asks(ctx.text) or other == "faq" \
            else None
        if hit is not None:  # a question in the middle: answered, then the step's question again
            active["at"] = ctx.now
            return f"{router.faq.entries[hit.entry_id].answer(ctx.lang)}\n{ctx.say(step.prompt)}"
    return _advance(flow, step.handle(ctx, s), s, msg, ctx)


def _advance(flow: Flow, step: Step, s: Slots, msg: InboundMessage, ctx: Context) -> str:
    if step.next is None:
        ctx.state.pop("flow", None)
    else:
        ctx.state["flow"] = {"name": flow.name, "step": step.next, "slots": s, "at": ctx.now}
    if step.reroute:
        action = ctx.router.decide(msg.kind, ctx.u, ctx.state, False)
        return ctx.router.actions[action](msg, ctx)
    return step.reply
