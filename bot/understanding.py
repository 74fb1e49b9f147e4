"""The understanding step: what a message asks for, how sure the bot is, and how it feels.

One function, ``understand``, used by the router on every message and by ``crmbot bot route``:
1. a menu ``EventKey`` or an exact short command (积分, 绑卡, 人工, 取消) is a precise override;
2. the answer to a question the bot asked ("1", "投诉") picks one of the offered choices;
3. everything else goes to the trained intent and sentiment models (Chinese or English), each
   with its confidence, weighed with the brand's complaint and lead words (``weighed``).
   Whether that confidence is enough is the router's decision.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Mapping

from bot import policy, slots
from channels import base
from channels.base import InboundMessage
from config.content import BotContent, BotRules, normalize_command
from nlp import analysis
from nlp.sentiment import Sentiment
from nlp.text import normalize
from nlp.tokenize import language

NEUTRAL = Sentiment("neu", 0.5)
# A finer request than its intent: what the route reports as the intent.
INTENT_OF_REQUEST = {"points_history": "points_balance", "cancel": "chitchat"}
_CHOICE_NUMBER = re.compile(r"^\s*(?:第\s*)?([1-9])\s*(?:个|号|项)?\s*[.。、)）]?\s*$")


@dataclass(frozen=True)
class Understanding:
    """What the bot made of one message."""

    text: str  # what the customer typed (or, for a chosen option, the message that was asked about)
    lang: str  # zh | en: the language to answer in
    intent: str  # one of nlp.intent.INTENTS
    confidence: float  # 0..1; 1 for a menu key, a command or a chosen option
    sentiment: Sentiment
    source: str  # menu | command | choice | model | none (no text)
    request: str = ""  # the specific request: the intent, points_history, cancel, or faq:<entry id>
    ranked: tuple[tuple[str, float], ...] = ()  # the model's intents, most likely first


def typed_text(msg: InboundMessage, content: BotContent) -> str:
    """Only what the customer typed (or said) is read, cut to the configured length; a link's
    title or a place name is not a request."""
    if msg.kind not in (base.TEXT, base.VOICE):
        return ""
    return msg.text.strip()[: content.rules.limits["max_text_chars"]]


def command_of(text: str, content: BotContent) -> str | None:
    """The request of an exact short command, or None. "人工人工人工" is 人工 said three times."""
    key = normalize_command(normalize(text))
    if not key or len(key) > 12:
        return None
    commands = content.rules.commands
    if key in commands:
        return commands[key]
    for size in range(1, len(key) // 2 + 1):
        if len(key) % size == 0 and key[:size] * (len(key) // size) == key and key[:size] in commands:
            return commands[key[:size]]
    return None


def understand(msg: InboundMessage, content: BotContent, state: Mapping[str, Any] | None = None,
               reading: Understanding | None = None) -> Understanding:
    """What ``msg`` asks for, given the conversation's ``state`` (the choices the bot offered).

    ``reading`` is the models' reading of the message (``from_models``) when the caller made it
    already: it does not depend on the state, so the webhook makes it before its transaction."""
    state = state or {}
    text = typed_text(msg, content)
    lang = language_of(text, str(state.get("lang", "zh")))
    menu_request = content.rules.menu.get(str(msg.attributes.get("key") or "")) if msg.kind == base.MENU_CLICK \
        else None
    if menu_request:
        return _override(text, lang, menu_request, "menu")
    if not text:
        return Understanding("", lang, "chitchat", 0.0, NEUTRAL, "none")
    request = command_of(text, content)
    if request:
        return _override(text, lang, request, "command")
    chosen = _chosen(text, content, state.get("choices"))
    if chosen is not None:
        return chosen
    if reading is not None and reading.text == text:
        return dataclasses.replace(reading, lang=lang)
    return from_models(text, lang, content)


def asks(text: str) -> bool:
    """Whether ``text`` is worded as a question (吗, 怎么, 多少, ?, how, can I …)."""
    return bool(_QUESTION.search(normalize(text)))


_QUESTION = re.compile(r"[?？]|吗|呢|么|怎么|什么|哪|几|多少|多久|多长时间|啥|咋|能不能|可不可以|是否|有没有|是不是|要不要|"
                       r"会不会|行不行|有木有|"
                       # "能放冰箱嘛", "还能再用不": 嘛 and 不 that end a clause after a verb that asks
                       r"(?:能|可以|行|有|是|会|要|用)[^，,。.!！?？~～\s]{0,10}(?:嘛|不)(?=$|[，,。.!！?？~～\s])|"
                       r"\b(?:how|what|when|where|which|can i|do you|is there|are there)\b")


def states_problem(text: str, rules: BotRules) -> bool:
    """Whether a clause of ``text`` that is not a question names a complaint category's problem
    (not an urgent one: "孩子过敏" beside a question about nuts is the reason for the question)."""
    clauses = [c for c in _CLAUSE.findall(normalize(text)) if c.strip(" 。！!？?；;\n")]
    return len(clauses) > 1 and any(
        not asks(c) and policy.category(c, rules) not in ("other", *rules.urgent_categories)
        for c in clauses)


# A clause with the marks that end it (a question keeps its "？").
_CLAUSE = re.compile(r"(?:(?!另外|还有|顺便|by the way)[^。！!？?；;\n])+[。！!？?；;\n]*|(?:另外|还有|顺便|by the way)")


def language_of(text: str, current: str) -> str:
    """The language to answer ``text`` in; a text with no letters ("12345", "👍") keeps the
    conversation's ``current`` one."""
    clean = normalize(text)
    if not any(ch.isalpha() for ch in clean):
        return current
    return language(clean)


def from_models(text: str, lang: str | None, content: BotContent) -> Understanding:
    """The trained models' reading of ``text``, weighed with the brand's own words (``weighed``);
    answered in ``lang``."""
    result, intent, confidence = models_reading(text, content.rules)
    ranked = result.ranked or ((result.intent.name, result.intent.confidence),)
    return Understanding(text, lang or result.lang, intent, confidence, result.sentiment, "model", intent, ranked)


def models_reading(text: str, rules: BotRules, keywords: int = 0) -> tuple[analysis.Analysis, str, float]:
    """The models' analysis of ``text`` (with up to ``keywords`` keywords) and its intent and
    confidence weighed with the brand's words: one reading for the router, the analysis job and
    listening alike."""
    result = analysis.analyze(text, None, k=keywords)
    ranked = dict(result.ranked or ((result.intent.name, result.intent.confidence),))
    intent, confidence = weighed(text, result.intent.name, result.intent.confidence, ranked,
                                 result.sentiment.label, rules)
    return result, intent, confidence


# "…怎么办" asks what to do about a problem it states ("奶茶里有头发怎么办"): for the rules below
# that is a statement of the problem, not a question about how things work.
_WHAT_NOW = re.compile(r"怎么办|咋办|what (?:should|do|can) i do(?: now)?")

# Intents that give way to a likely complaint; points, level, binding and a human are requests
# more specific than a complaint, and stay.
_YIELD_TO_COMPLAINT = frozenset({"chitchat", "faq", "lead", "praise"})


def weighed(text: str, intent: str, confidence: float, p: Mapping[str, float], mood: str,
            rules: BotRules) -> tuple[str, float]:
    """The models' intent and confidence, weighed with what the brand's rules know.

    Missing a complaint costs more than any other mistake, so:
    1. a negative message whose complaint probability reaches ``thresholds.complaint`` is a
       complaint, unless a more specific request is likelier;
    2. food safety or a legal threat (``priority.urgent_categories``) is a complaint, unless it
       is a calm question ("坚果过敏的能喝吗") or the models are sure it asks for a person;
    3. another complaint category's words ("异物", "多收") decide when the models are unsure and
       the message is unhappy or a statement (not "怎么退货？"), and whatever the models say when
       one clause states the problem beside a question ("奶茶里有头发！另外几点关门") or an
       unhappy statement names it ("那单到现在还没退回来").
    And 4. an unsure lead or request for a person that speaks of franchise, wholesale or a
    hundred boxes is a lead.
    A complaint's confidence is at least ``thresholds.complaint``, a lead's ``thresholds.intent``,
    so the router acts on them."""
    t = rules.thresholds
    unhappy, unsure = mood == "neg", confidence < t["intent"]
    if intent == "complaint" or intent == "human" and not unsure:
        return intent, confidence
    as_complaint = "complaint", max(p.get("complaint", 0.0), t["complaint"])
    if intent in _YIELD_TO_COMPLAINT and unhappy and p.get("complaint", 0.0) >= t["complaint"]:
        return as_complaint
    category = policy.category(text, rules)
    question = asks(_WHAT_NOW.sub("", normalize(text)))
    if category in rules.urgent_categories and (unhappy or not question):
        return as_complaint  # "我要去市场监管局举报你们" too, when the models only guess at a person
    # "我是王先生，电话139…，想批发100箱": a person from sales, through the lead flow (rule 4).
    business = unsure and intent in ("lead", "human") and slots.is_business(text, rules.business_words,
                                                                            rules.bulk_quantity)
    if intent == "human" and not business:
        return intent, confidence
    if category != "other" and mood != "pos":
        if unsure and (unhappy or not question) or intent in _YIELD_TO_COMPLAINT and (
                states_problem(text, rules) or unhappy and not question):
            return as_complaint
    if business:
        return "lead", t["intent"]
    return intent, confidence


def _override(text: str, lang: str, request: str, source: str) -> Understanding:
    intent = INTENT_OF_REQUEST.get(request, request)
    return Understanding(text, lang, intent, 1.0, NEUTRAL, source, request)


def _chosen(text: str, content: BotContent, offered: Any) -> Understanding | None:
    """The option picked from ``offered`` (saved when the bot asked): by number, or by words.

    ``offered`` is ``{"text": the message asked about, "lang": ..., "options": [request, ...]}``."""
    if not isinstance(offered, dict) or not offered.get("options"):
        return None
    options = list(offered["options"])
    number = _CHOICE_NUMBER.match(normalize(text))
    picked = None
    if number and int(number.group(1)) <= len(options):
        picked = options[int(number.group(1)) - 1]
    else:
        key = normalize_command(normalize(text))
        for option in options:
            names = {normalize_command(content.say(f"intent_names.{option}", lang))
                     for lang in ("zh", "en") if not option.startswith("faq:")}
            if key and key in names:
                picked = option
    if picked is None:
        return None
    lang = str(offered.get("lang", "zh"))
    about = str(offered.get("text") or "")
    intent = "faq" if picked.startswith("faq:") else INTENT_OF_REQUEST.get(picked, picked)
    mood = from_models(about, lang, content).sentiment if about else NEUTRAL
    return Understanding(about, lang, intent, 1.0, mood, "choice", picked)
