"""The understanding step: what a message asks for, how sure the bot is, and how it feels.

One function, ``understand``, used by the router on every message and by ``crmbot bot route``:
1. a menu ``EventKey`` or an exact short command (积分, 绑卡, 人工, 取消) is a precise override;
2. the answer to a question the bot asked ("1", "投诉") picks one of the offered choices;
3. everything else goes to the trained intent and sentiment models (Chinese or English), each
   with its confidence. Whether that confidence is enough is the router's decision.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from bot import policy, slots
from channels import base
from channels.base import InboundMessage
from config.content import BotContent, normalize_command
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


def understand(msg: InboundMessage, content: BotContent, state: Mapping[str, Any] | None = None) -> Understanding:
    """What ``msg`` asks for, given the conversation's ``state`` (the choices the bot offered)."""
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
    return from_models(text, lang, content)


def asks(text: str) -> bool:
    """Whether ``text`` is worded as a question (吗, 怎么, 多少, ?, how, can I …)."""
    return bool(_QUESTION.search(normalize(text)))


_QUESTION = re.compile(r"[?？]|吗|呢|么|怎么|什么|哪|几|多少|能不能|可不可以|是否|有没有|\b(?:how|what|when|where|which|"
                       r"can i|do you|is there|are there)\b")


def language_of(text: str, current: str) -> str:
    """The language to answer ``text`` in; a text with no letters ("12345", "👍") keeps the
    conversation's ``current`` one."""
    clean = normalize(text)
    if not any(ch.isalpha() for ch in clean):
        return current
    return language(clean)


# Missing a complaint costs more than a wrong guess between these: in a negative message, a
# likely complaint is read as one (thresholds.complaint), unless something more specific (points,
# level, binding, a human) is the likelier request.
_YIELD_TO_COMPLAINT = frozenset({"chitchat", "faq", "lead", "praise"})
LEAD_CUE_INTENTS = frozenset({"lead"})


def from_models(text: str, lang: str | None, content: BotContent) -> Understanding:
    """The trained models' reading of ``text``, with their confidences; answered in ``lang``."""
    result = analysis.analyze(text, None, k=0)
    ranked = result.ranked or ((result.intent.name, result.intent.confidence),)
    intent, confidence = result.intent.name, result.intent.confidence
    complaint = dict(ranked).get("complaint", 0.0)
    unhappy = result.sentiment.label == "neg"
    if intent in _YIELD_TO_COMPLAINT and unhappy and complaint >= content.rules.thresholds["complaint"]:
        intent, confidence = "complaint", complaint
    elif intent not in ("complaint", "human"):
        category = policy.category(text, content.rules)
        if category in content.rules.urgent_categories and (unhappy or not asks(text)):
            # Illness, allergy, the police or 12315: never missed, unless it is a calm question
            # ("坚果过敏的能喝吗").
            intent, confidence = "complaint", max(complaint, content.rules.thresholds["complaint"])
        elif category != "other" and (unhappy or result.sentiment.label == "neu" and not asks(text)) \
                and confidence < content.rules.thresholds["intent"]:
            # The models are unsure, and the message names a problem the brand's complaint
            # categories know ("异物", "多收"), unhappily or as a plain statement (not "怎么退货？"):
            # the domain's words break the tie.
            intent, confidence = "complaint", max(complaint, content.rules.thresholds["complaint"])
    rules = content.rules
    if intent in LEAD_CUE_INTENTS and confidence < rules.thresholds["intent"] \
            and slots.is_business(text, rules.business_words, rules.bulk_quantity):
        # Unsure, and the message speaks of franchise, wholesale or a hundred boxes: a lead.
        intent, confidence = "lead", max(dict(ranked).get("lead", 0.0), rules.thresholds["intent"])
    return Understanding(text, lang or result.lang, intent, confidence, result.sentiment, "model", intent, ranked)


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
