"""The public face of ``nlp``: analyze a text into language, tokens, keywords, sentiment, intent.

Every function takes any text a channel may deliver (empty, emoji only, 10,000 characters,
mixed Chinese and English, control characters, bytes that are not UTF-8) and returns a defined
value; no exception escapes.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from nlp import tokenize as tok
from nlp.intent import Intent
from nlp.keywords import keywords
from nlp.model import features, load_scorer, mixed
from nlp.sentiment import Sentiment, is_strong, lexicon_sentiment
from nlp.text import normalize

log = logging.getLogger(__name__)
MAX_CHARS = 2000  # longer texts are scored on their start: the signal is there, the cost is not
NEUTRAL = Sentiment("neu", 0.5)
NO_INTENT = Intent("chitchat", 0.0)
_HANDLE = re.compile(r"@[^\s@:：,，。!！?？/]+")  # @CafeTeaHouse, @星巴克中国, //@某某:


@dataclass(frozen=True)
class Analysis:
    lang: str
    tokens: tuple[str, ...]
    keywords: tuple[str, ...]
    sentiment: Sentiment
    intent: Intent
    ranked: tuple[tuple[str, float], ...] = ()  # every intent with its probability, most likely first


def clean_input(text: str | bytes | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return normalize(text[: MAX_CHARS * 2])[:MAX_CHARS]


@lru_cache(maxsize=1)
def vader_analyzer():  # type: ignore[no-untyped-def]
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def load(brand_words: Sequence[str] = ()) -> None:
    """Load jieba, the brand dictionary, VADER and the trained models once, before serving."""
    tok.load(brand_words)
    vader_analyzer()
    for lang in ("zh", "en"):
        load_scorer(lang)
    keywords("预热")


def featurize(clean: str, lang: str) -> tuple[list[str], dict[str, float]]:
    """Tokens and model features of a cleaned text: the same for training and for scoring.

    @handles are left out: they say whom a post addresses, not what it says, and a model that
    learned "@brand" would call every message that does not address the brand chitchat."""
    clean = _HANDLE.sub(" ", clean)
    tokens = tok.tokenize_normalized(clean, lang)
    vader = vader_analyzer().polarity_scores(clean)["compound"] if lang == "en" else None
    return tokens, features(clean, lang, tokens, vader)


def _sentiment(text: str, p: dict[str, float] | None) -> Sentiment:
    if p is None:
        return lexicon_sentiment(text)
    label = max(p, key=p.get)
    return Sentiment(label, round(p.get("pos", 0) + 0.5 * p.get("neu", 0), 3), is_strong(text, label == "neg"))


def _intents(p: dict[str, float] | None) -> tuple[Intent, tuple[tuple[str, float], ...]]:
    """The model's intent, and every intent's probability, most likely first."""
    if p is None:
        return NO_INTENT, ()
    ranked = tuple(sorted(((name, round(value, 3)) for name, value in p.items()), key=lambda item: -item[1]))
    name, confidence = ranked[0]
    return Intent(name, confidence), ranked


def analyze(text: str | bytes | None, lang: str | None = None, k: int = 5) -> Analysis:
    """Language, tokens, keywords, sentiment and intent of ``text``."""
    clean = clean_input(text)
    if not any(ch.isalnum() for ch in clean) and not any(ord(ch) > 0x2600 for ch in clean):
        return Analysis(lang or "zh", (), (), NEUTRAL, NO_INTENT)
    try:
        lang = lang if lang in ("zh", "en") else tok.language(clean)
        tokens, feats = featurize(clean, lang)
        p = load_scorer(lang).probabilities(feats)
        intent, ranked = _intents(mixed(p, "intent"))
        return Analysis(lang, tuple(tokens), tuple(keywords(clean, k, tokens) if k else ()),
                        _sentiment(clean, mixed(p, "sentiment")), intent, ranked)
    except Exception:  # noqa: BLE001 - analysis must never break a caller; log and answer neutral
        log.exception("nlp: could not analyze a text of %d characters", len(clean))
        return Analysis(lang or "zh", (), (), NEUTRAL, NO_INTENT)


def sentiment(text: str | bytes | None, lang: str | None = None) -> Sentiment:
    return analyze(text, lang, k=0).sentiment


def intent(text: str | bytes | None, lang: str | None = None) -> Intent:
    return analyze(text, lang, k=0).intent
