"""The conversation router: understand a message, decide what to do, do it.

``understand`` (bot.understanding) reads the message; ``Router.decide`` turns that and the
conversation's state into one action name; the action's handler answers. ``crmbot bot route``
runs the same two first steps and prints the action without doing it. The router returns the
reply text and never sends anything itself. One error handler turns any handler failure into a
polite answer, logged with the conversation id. Handlers change the store through ``ctx.store``
(bot.store), inside the transaction that records the message, so a message and its effects land
together; so does the conversation's state, which the store keeps with the customer's channel
identity.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Mapping, Protocol

from bot import policy, slots
from bot.otp import OneTimeCodes
from bot.store import BotStore
from bot.understanding import Understanding, asks, command_of, from_models, states_problem, typed_text, understand
from channels import base
from channels.base import InboundMessage
from config.content import LANGS, BotContent, FaqEntry
from crm_store.services import RATING_TICKET, RecordedInbound
from nlp.faq import FaqHit, FaqIndex
from nlp.text import find_terms

log = logging.getLogger(__name__)

# Events that need no answer: WeChat shows nothing for them, or the customer already left.
SILENT_KINDS = frozenset({base.UNSUBSCRIBE, base.MENU_VIEW, base.LOCATION_REPORT, base.SCAN, base.UNKNOWN})
# What a request (a menu key, a command, a chosen option) does.
ACTION_OF_REQUEST = {"points_balance": "points_balance", "points_history": "points_history",
                     "member_level": "member_level", "member_bind": "member_bind", "complaint": "complaint",
                     "lead": "lead", "human": "handoff", "faq": "faq", "praise": "praise", "chitchat": "greeting"}
# Actions that start something of their own: inside a flow, a confident one of these leaves it.
NEW_SUBJECTS = frozenset({"points_balance", "points_history", "member_level", "member_bind", "complaint", "lead",
                          "handoff"})
HISTORY_WORDS = ("明细", "记录", "历史", "流水", "怎么扣", "扣了", "少了", "不见", "变成", "哪来", "history", "statement",
                 "where did")
# Words that ask for the customer's own balance; a points question without them ("积分会过期吗",
# "多少积分能换一杯") asks how points work, which the FAQ answers.
BALANCE_WORDS = ("有多少", "是多少", "多少了", "还有", "还剩", "剩", "余额", "几分", "够", "查", "看看", "看一下",
                 "how many points do", "how many do i", "balance", "check", "do i have", "have i got", "left")
# The same for a level question: without these it asks how levels work ("金卡有什么权益",
# "等级会掉吗"), which the FAQ answers, and a customer who is not yet a member is answered too.
LEVEL_WORDS = ("我是", "我现在", "我目前", "我的", "我还", "我被", "几级", "查", "看看", "看一下", "还差", "差多少",
               "my tier", "my level", "my status", "am i", "i am", "i'm", "check")
OWN_FIGURE_WORDS = {"points_balance": BALANCE_WORDS, "member_level": LEVEL_WORDS}
GREETINGS = ("你好", "您好", "哈喽", "嗨", "在吗", "在不在", "有人吗", "早上好", "早安", "晚上好", "下午好", "hello", "hi",
             "hey", "good morning", "good evening", "anyone there")
# Actions after which the bot may still not have helped (they count misses themselves), or that
# say nothing about it.
MAY_MISS = frozenset({"clarify", "fallback", "faq", "silent", "handoff_wait", "non_text"})
# Intents a calm question the FAQ answers well is answered before (``calm_faq_question``): not
# the customer's own points or level, which "how many points do I have?" asks for.
FAQ_BEFORE = frozenset({"complaint", "member_bind", "chitchat", "praise"})
# Choices never offered when the bot asks: they are not requests.
NOT_A_CHOICE = frozenset({"chitchat", "praise"})


class FaqBook:
    """The FAQ knowledge base and its retrieval index per language, built once at start-up."""

    def __init__(self, entries: tuple[FaqEntry, ...]) -> None:
        self.entries = {entry.id: entry for entry in entries}
        self.indexes = {lang: FaqIndex({e.id: e.questions.get(lang, ()) for e in entries}, lang) for lang in LANGS}
        # The router asks about one text more than once (decide, then answer): rank it once.
        self.rank: Callable[[str, str], list[FaqHit]] = lru_cache(maxsize=1024)(self._rank)

    def _rank(self, text: str, lang: str) -> list[FaqHit]:
        return self.indexes.get(lang, self.indexes["zh"]).rank(text)


CSAT_FLOW = "csat"  # the flow that asks a resolved ticket's customer for a rating (bot.flows.CSAT)


def start_csat(state: dict[str, Any], ticket_id: int, now: float) -> None:
    """Put the conversation in the CSAT flow at its score step (the question was sent already)."""
    state["flow"] = {"name": CSAT_FLOW, "step": "score", "slots": {"ticket_id": ticket_id}, "at": now}


@dataclass
class Context:
    """What a handler may read and change: ``state`` is saved after the handler returns."""

    conversation_id: int
    customer_id: int
    content: BotContent
    store: BotStore
    codes: OneTimeCodes
    router: Router
    u: Understanding
    state: dict[str, Any] = field(default_factory=dict)
    now: float = field(default_factory=time.time)

    @property
    def text(self) -> str:
        return self.u.text

    @property
    def lang(self) -> str:
        return self.u.lang

    def say(self, name: str, **values: Any) -> str:
        return self.content.say(name, self.u.lang, **values)

    def offer(self, options: list[str]) -> None:
        """Remember the numbered options just offered; the next message may pick one of them."""
        self.state["choices"] = {"text": self.u.text, "lang": self.u.lang, "options": options}


class Action(Protocol):
    """Does one decided action and returns the reply text (empty: no reply)."""

    def __call__(self, msg: InboundMessage, ctx: Context) -> str: ...


class HandlerFailed(Exception):
    """A handler broke. What it half-wrote must be undone; ``reply`` is the polite answer."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class Router:
    """Answers one inbound message from what it understands and the conversation's state."""

    def __init__(self, actions: Mapping[str, Action], content: BotContent, codes: OneTimeCodes | None,
                 state_ttl: int, clock: Callable[[], float] = time.time) -> None:
        self.actions = dict(actions)
        self.content = content
        self.codes = codes
        self.state_ttl = state_ttl  # seconds a conversation's state lives after its last change
        self.clock = clock
        self.faq = FaqBook(content.faq)
        self.thresholds = content.rules.thresholds

    def read(self, msg: InboundMessage) -> Understanding | None:
        """The slow part of understanding ``msg``, which needs no state: the models' reading (and
        the FAQ's ranking, where the decision may ask for it). The webhook calls this before its
        transaction, so no store lock is held while the models run; ``answer`` takes the result."""
        text = typed_text(msg, self.content)
        if not text or command_of(text, self.content):
            return None
        reading = from_models(text, None, self.content)
        if reading.intent in ("faq", "chitchat", "lead") or reading.confidence < self.thresholds["intent"]:
            self.faq.rank(text, reading.lang)  # cached: the decision and the answer find it ranked
        return reading

    def answer(self, msg: InboundMessage, recorded: RecordedInbound, store: BotStore,
               reading: Understanding | None = None) -> str:
        """The reply to ``msg`` (empty: none); its effects and the new state go to ``store``.
        ``reading``: what ``read`` made of the message, if the caller called it."""
        conversation_id = recorded.conversation_id
        loaded = recorded.state
        u = understand(msg, self.content, loaded, reading)
        ctx = Context(conversation_id, recorded.customer_id, self.content, store, self.codes, self, u, dict(loaded),
                      self.clock())
        if (rated := ctx.state.pop(RATING_TICKET, None)) is not None:  # an agent resolved a ticket
            start_csat(ctx.state, rated, ctx.now)
        notice = self._expire_flow(ctx)
        ctx.state.pop("choices", None)  # options offered are good for one message
        if u.lang == "zh":  # the conversation's language is kept only when it is not the default
            ctx.state.pop("lang", None)
        else:
            ctx.state["lang"] = u.lang
        action = self.decide(msg.kind, u, ctx.state, recorded.agent_owned)
        if action not in MAY_MISS:
            ctx.state.pop("misses", None)  # understood: a run of misunderstood messages ends
        try:
            reply = self.actions[action](msg, ctx)
        except Exception as exc:  # noqa: BLE001 - one broken rule must not leave the customer unanswered
            log.exception("conversation %s: action %s failed, answering with the fallback", conversation_id, action)
            raise HandlerFailed(self.content.say("busy", u.lang)) from exc
        if ctx.state != loaded:  # most messages change nothing: save the write
            store.save_state(conversation_id, ctx.state, self.state_ttl)
        return "\n".join(part for part in (notice, reply) if part)

    def decide(self, kind: str, u: Understanding, state: Mapping[str, Any], agent_owned: bool) -> str:
        """The action for a message: a pure function of what was understood and the state."""
        if kind == base.SUBSCRIBE:
            return "welcome"
        if kind in SILENT_KINDS:
            return "silent"
        if agent_owned:
            return "handoff_cancel" if u.request == "cancel" else "handoff_wait"
        if "flow" in state:
            return "flow"
        if u.source == "none":
            return "non_text"
        if u.request == "cancel":
            return "nothing_to_cancel"
        if u.request.startswith("faq:"):
            return "faq"
        if u.source != "model":
            return self.refine(ACTION_OF_REQUEST[u.request], u)
        return self.decide_by_models(u)

    def decide_by_models(self, u: Understanding) -> str:
        """What to do with the models' reading: act when sure, ask when not."""
        t = self.thresholds
        intent = u.intent
        if intent in FAQ_BEFORE and self.calm_faq_question(u):
            return "faq"  # "退款多久到账", "礼品卡怎么用": a question the FAQ answers, not a complaint or a request
        # A complaint is acted on from a lower confidence (see bot.understanding.from_models).
        sure = u.confidence >= t["complaint" if intent == "complaint" else "intent"]
        if not sure:
            if u.sentiment.strong:
                return "handoff"  # angry, and no clear request: a person should answer
            # Unsure, but a question the FAQ answers well: answered (the bar is higher when the
            # models did not even think it a likely question).
            maybe_question = "faq" in (name for name, _ in u.ranked[:2])
            if self.faq_answers(u, unprompted=not maybe_question):
                return "faq"
            return "clarify"
        if u.sentiment.strong and (intent in ("chitchat", "praise") or intent == "complaint" and
                                   policy.category(u.text, self.content.rules) == "other"):
            return "handoff"  # an outburst with no problem named ("气死我了，再也不来了！！！"): a person answers
        if intent == "chitchat":
            if self.faq_answers(u, unprompted=True):
                return "faq"
            return "greeting" if find_terms(u.text, GREETINGS) else "small_talk"
        return self.refine(ACTION_OF_REQUEST[intent], u)

    def refine(self, action: str, u: Understanding) -> str:
        """The finer action a request's words call for: points history, or a price question."""
        if action == "points_balance" and find_terms(u.text, HISTORY_WORDS):
            return "points_history"
        if action in OWN_FIGURE_WORDS and u.source == "model" and asks(u.text) and not find_terms(
                u.text, OWN_FIGURE_WORDS[action]) and self.faq_answers(u, unprompted=any(c.isdigit() for c in u.text)):
            # How points or levels work ("积分会过期吗", "金卡有什么权益"), not the customer's own
            # figure; a figure of their own ("刚看好像是980分") asks about their account, unless
            # the FAQ matches it closely.
            return "faq"
        if action == "lead" and u.source == "model" and not slots.is_business(
                u.text, self.content.rules.business_words, self.content.rules.bulk_quantity):
            return "faq"  # a shopper's price question: answered, not a lead
        return action

    def calm_faq_question(self, u: Understanding) -> bool:
        """A calm question, stating no problem, that the FAQ answers with the confidence it needs
        unprompted: answered from the FAQ whatever request the models read into its words
        ("订单怎么取消" is not a complaint, "礼品卡怎么用" not card binding)."""
        rules = self.content.rules
        return (u.sentiment.label != "neg" and not u.sentiment.strong and asks(u.text)
                and policy.category(u.text, rules) not in rules.urgent_categories
                and not states_problem(u.text, rules) and self.faq_answers(u, unprompted=True) is not None)

    def faq_answers(self, u: Understanding, unprompted: bool = False) -> FaqHit | None:
        """The FAQ entry to answer with, when retrieval is sure enough; surer when the models
        did not read the message as a question (``unprompted``)."""
        hits = self.faq.rank(u.text, u.lang) if u.text else []
        bar = self.thresholds["faq_unprompted" if unprompted else "faq_answer"]
        return hits[0] if hits and hits[0].confidence >= bar else None

    def choices(self, u: Understanding) -> list[str]:
        """What to offer when unsure: the two likeliest real requests, then a human."""
        return [name for name, _ in u.ranked if name not in NOT_A_CHOICE and name != "human"][:2] + ["human"]

    def _expire_flow(self, ctx: Context) -> str:
        flow = ctx.state.get("flow")
        if flow and ctx.now - flow.get("at", 0) > self.content.rules.limits["flow_timeout_seconds"]:
            del ctx.state["flow"]
            return ctx.say("flow_timed_out")
        return ""


def numbered(names: list[str]) -> str:
    """ "1 投诉反馈 2 咨询问题 3 转人工" """
    return " ".join(f"{n} {name}" for n, name in enumerate(names, start=1))
