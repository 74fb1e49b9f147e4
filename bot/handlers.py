"""What the bot does for each action ``Router.decide`` can choose."""
from __future__ import annotations

from functools import partial

from bot import flows, policy
from bot.router import Action, Context, numbered
from channels import base
from channels.base import InboundMessage
from nlp.text import find_terms

KIND_NAMES = {"zh": {base.IMAGE: "图片", base.VOICE: "语音", base.VIDEO: "视频", base.LOCATION: "位置",
                     base.LINK: "链接", base.MENU_CLICK: "菜单选择"},
              "en": {base.IMAGE: "picture", base.VOICE: "voice message", base.VIDEO: "video",
                     base.LOCATION: "location", base.LINK: "link", base.MENU_CLICK: "menu choice"}}


def reply(name: str, msg: InboundMessage, ctx: Context) -> str:
    return ctx.say(name)


def silent(msg: InboundMessage, ctx: Context) -> str:
    return ""


def welcome(msg: InboundMessage, ctx: Context) -> str:
    ctx.state.clear()  # a new follow starts a new conversation with the bot
    return ctx.say("welcome")


def non_text(msg: InboundMessage, ctx: Context) -> str:
    names = KIND_NAMES.get(ctx.lang, KIND_NAMES["zh"])
    return ctx.say("non_text", kind=names.get(msg.kind, "message" if ctx.lang == "en" else "消息"))


def handoff(msg: InboundMessage, ctx: Context) -> str:
    """Queue the conversation for an agent: the customer learns the ticket, the expected wait and
    how to call it off; until an agent resolves it the bot only acknowledges. A ticket of the
    conversation still with staff (a complaint just filed) takes the message instead: one case,
    not two in the queue."""
    lang = ctx.state.get("lang")
    ctx.state.clear()
    if lang:
        ctx.state["lang"] = lang
    if (added := flows.add_to_open_ticket(ctx)) is not None:
        return added
    ctx.state["ack_at"] = ctx.now  # the hand-off answer is the first acknowledgement
    ticket = flows.open_ticket(ctx, "handoff", ctx.text or ctx.say("intent_names.human"))
    return ctx.say("handoff_queued", reference=ticket.reference,
                   response_time=policy.response_time_text(ticket.priority, ctx.content.rules, ctx.lang))


def handoff_wait(msg: InboundMessage, ctx: Context) -> str:
    """While an agent has the conversation: a short acknowledgement, at most once per interval."""
    if ctx.now - float(ctx.state.get("ack_at", 0)) < ctx.content.rules.thresholds["handoff_ack_seconds"]:
        return ""
    ticket = ctx.store.waiting_handoff(ctx.conversation_id)
    ctx.state["ack_at"] = ctx.now
    return ctx.say("handoff_waiting", reference=ticket.reference if ticket else "")


def handoff_cancel(msg: InboundMessage, ctx: Context) -> str:
    """取消 while waiting for an agent: the hand-off is called off, unless an agent has it already."""
    ticket = ctx.store.cancel_handoff(ctx.conversation_id)
    if ticket is None:  # claimed: the agent answers
        claimed = ctx.store.waiting_handoff(ctx.conversation_id)
        return ctx.say("handoff_waiting", reference=claimed.reference if claimed else "")
    ctx.state.pop("ack_at", None)
    return ctx.say("handoff_cancelled", reference=ticket.reference)


def member_self_service(msg: InboundMessage, ctx: Context, what: str) -> str:
    """Points balance, points history, level and benefits; binding comes first."""
    member_id = ctx.store.member_id(ctx.customer_id)
    if member_id is None:
        return ctx.say("need_member")
    if what == "points_history":
        limit = ctx.content.rules.limits["points_history_entries"]
        entries = ctx.store.points_history(member_id, limit)
        if not entries:
            return ctx.say("points_history_empty")
        lines = "\n".join(f"{e.created_at:%m-%d} {e.points:+d} {e.reason}" for e in entries)
        return ctx.say("points_history", lines=lines)
    standing = ctx.store.standing(member_id, ctx.content.rules.levels)
    if what == "points_balance":
        return ctx.say("points_balance", balance=standing.balance)
    following = (ctx.say("level_next", points=standing.points_to_next, next_level=standing.next_level.name)
                 if standing.next_level else ctx.say("level_top"))
    return ctx.say("member_level", level=standing.level.name, benefits="、".join(standing.level.benefits),
                   next=following)


# Words that ask how one's case is going ("多久能处理好", "有结果了吗", "any update?"): while a
# ticket of the conversation is with staff, the ticket answers them, not the FAQ or a question.
PROGRESS_WORDS = ("进度", "进展", "有结果", "怎么样了", "处理好了吗", "处理完", "还要等", "等多久", "多久…处理", "多久…解决",
                  "多久…联系", "多久…回复", "多久…答复", "多久…好", "什么时候…处理", "什么时候…解决", "什么时候…联系",
                  "什么时候…回复", "啥时候…处理", "啥时候…联系", "没人…联系", "没人…回", "还没…回复", "还没…处理",
                  "还没…联系", "any update", "any news", "how much longer", "still waiting", "hear back",
                  "when will someone", "when will you get back", "status of my", "no one has", "nobody has",
                  "how long...wait")


def ticket_progress(ctx: Context) -> str | None:
    """The open ticket's reference and expected response time, for a question about how the
    customer's case is going (the question is added to the ticket); ``None`` for any other
    message, or when no ticket of the conversation is with staff."""
    if ctx.u.source != "model" or not find_terms(ctx.text, PROGRESS_WORDS):
        return None
    return flows.add_to_open_ticket(ctx)


def faq(msg: InboundMessage, ctx: Context) -> str:
    """Answer from the knowledge base when retrieval is sure; offer the top three when it is
    less sure ("您是不是想问：…"); say so when nothing fits. A question about the customer's
    own open case gets the case (``ticket_progress``)."""
    book, t = ctx.router.faq, ctx.content.rules.thresholds
    if ctx.u.request.startswith("faq:") and ctx.u.request[4:] in book.entries:
        ctx.state.pop("misses", None)
        return book.entries[ctx.u.request[4:]].answer(ctx.lang)
    if (progress := ticket_progress(ctx)) is not None:
        return progress
    hits = book.rank(ctx.text, ctx.lang)
    if hits and hits[0].confidence >= t["faq_answer"]:
        ctx.state.pop("misses", None)
        return book.entries[hits[0].entry_id].answer(ctx.lang)
    if hits and hits[0].confidence >= t["faq_suggest"]:
        ctx.offer([f"faq:{hit.entry_id}" for hit in hits])
        # Each entry's first question is its title: a matched variant may carry a customer's typo.
        titles = [book.entries[hit.entry_id].title(ctx.lang) for hit in hits]
        return ctx.say("faq_suggest", choices="\n".join(f"{n}. {title}" for n, title in enumerate(titles, 1)))
    return missed(ctx, ctx.say("faq_unknown"), msg)


def clarify(msg: InboundMessage, ctx: Context) -> str:
    """Unsure: ask, with two or three numbered choices; the answer continues with the message.
    A question about the customer's own open case gets the case (``ticket_progress``)."""
    if (progress := ticket_progress(ctx)) is not None:
        return progress
    options = ctx.router.choices(ctx.u)
    if len(options) < 2:  # nothing the models lean to (no text, or no models): the whole menu
        return fallback(msg, ctx)
    ctx.offer(options)
    return missed(ctx, ctx.say("clarify", choices=numbered([ctx.say(f"intent_names.{option}") for option in options])),
                  msg)


def fallback(msg: InboundMessage, ctx: Context) -> str:
    """Not understood: offer what the bot can do, as numbered choices (never the customer's
    words back); at N misses, offer a human; after that, hand off."""
    options = [name.split(".", 1)[1] for name in ctx.content.texts["zh"] if name.startswith("menu_choices.")]
    ctx.offer(options)
    lines = "\n".join(f"{n}. {ctx.say(f'menu_choices.{option}')}" for n, option in enumerate(options, 1))
    return missed(ctx, ctx.say("fallback", choices=lines), msg)


def missed(ctx: Context, answer: str, msg: InboundMessage) -> str:
    """``answer`` for a message the bot could not act on; the Nth such in a row offers a human,
    the one after that hands off."""
    misses = int(ctx.state.get("misses", 0)) + 1
    ctx.state["misses"] = misses
    limit = ctx.content.rules.limits["misses_before_human"]
    if misses > limit:
        return handoff(msg, ctx)
    if misses == limit:
        ctx.state.pop("choices", None)
        return ctx.say("offer_human")
    return answer


def default_actions() -> dict[str, Action]:
    """Every action ``Router.decide`` may choose, by name."""
    actions: dict[str, Action] = {
        "welcome": welcome, "silent": silent, "non_text": non_text, "flow": flows.run_flow,
        "nothing_to_cancel": partial(reply, "nothing_to_cancel"), "greeting": partial(reply, "greeting"),
        "small_talk": partial(reply, "small_talk"), "praise": partial(reply, "praise_thanks"),
        "handoff": handoff, "handoff_wait": handoff_wait, "handoff_cancel": handoff_cancel,
        "faq": faq, "clarify": clarify, "fallback": fallback,
    }
    for what in ("points_balance", "points_history", "member_level"):
        actions[what] = partial(member_self_service, what=what)
    for name in flows.STARTED_BY:
        actions[name] = partial(flows.start_flow, name)
    return actions
