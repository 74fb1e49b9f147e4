"""Tokenization: jieba with the brand's dictionary for Chinese, a word pattern for English.

jieba loads its dictionary once per process (about a second); ``load()`` does it up front so a
web or rq worker pays it at start, not on a customer's first message.
"""
from __future__ import annotations

import math
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from nlp.text import normalize

DATA = Path(__file__).with_name("data")
_lock = threading.Lock()
_tokenizer = None
_brand_words: frozenset[str] = frozenset()

# A Chinese text has at least this share of CJK characters among its letters.
_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[a-z]")
_EN_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[\U0001f300-\U0001faff\u2600-\u27bf]|[!?]")
_EMOTICON = re.compile(r"\[[\u4e00-\u9fffa-z]{1,4}\]")  # Weibo's [怒] [哈哈] [doge]


def load(brand_words: Iterable[str] = ()) -> None:
    """Load jieba and teach it the brand's words (idempotent; call again to add words)."""
    global _tokenizer, _brand_words
    import jieba  # heavy import, kept out of module import time

    with _lock:
        if _tokenizer is None:
            jieba.setLogLevel(60)
            tokenizer = _tokenizer_class()()
            tokenizer.initialize()
            _tokenizer = tokenizer
        new = {normalize(w) for w in brand_words} - _brand_words
        for word in new:
            _tokenizer.add_word(word, freq=2000)
        if new:
            _brand_words = _brand_words | new
            _cached_cut.cache_clear()


def _tokenizer_class() -> type:
    import jieba

    class Tokenizer(jieba.Tokenizer):
        """jieba with its no-HMM cut made about twice as fast: the same most probable route over
        the same dictionary (a test holds it to jieba's own output), but each word's log
        probability is computed once per process instead of at every position of every text."""

        def __init__(self) -> None:
            super().__init__()
            self.costs: dict[str, float] = {}

        def add_word(self, word: str, freq: int | None = None, tag: str | None = None) -> None:
            super().add_word(word, freq, tag)
            self.costs = {}  # the total frequency changed, and with it every probability

        # jieba's cut() calls this name-mangled method for HMM=False.
        def _Tokenizer__cut_DAG_NO_HMM(self, sentence: str) -> Iterable[str]:
            freq, costs, n = self.FREQ, self.costs, len(sentence)
            log_total = math.log(self.total)
            route: list[tuple[float, int]] = [(0.0, 0)] * (n + 1)  # best (log p, word end) from here
            for k in range(n - 1, -1, -1):
                best = (-log_total + route[k + 1][0], k)  # an unknown character counts once
                found = False
                i, fragment = k, sentence[k]
                while i < n and fragment in freq:
                    if freq[fragment]:
                        cost = costs.get(fragment)
                        if cost is None:
                            cost = costs[fragment] = math.log(freq[fragment]) - log_total
                        candidate = (cost + route[i + 1][0], i)
                        if not found or candidate > best:
                            best, found = candidate, True
                    i += 1
                    fragment = sentence[k:i + 1]
                route[k] = best
            x, latin = 0, ""
            while x < n:  # as jieba does, single Latin letters and digits in a row make one word
                y = route[x][1] + 1
                word = sentence[x:y]
                if y - x == 1 and word.isascii() and word.isalnum():
                    latin += word
                else:
                    if latin:
                        yield latin
                        latin = ""
                    yield word
                x = y
            if latin:
                yield latin

    return Tokenizer


def language(text: str) -> str:
    """'zh' when CJK characters are at least a third of the letters, else 'en'."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text.lower()))
    return "zh" if cjk and cjk * 3 >= latin else "en"


def written_language(text: str) -> str | None:
    """``language`` of a text with words in it; None for one without ("5", "👍", "?"), which says
    nothing of the writer's language."""
    return language(text) if _CJK.search(text) or _LATIN.search(text.lower()) else None


@lru_cache(maxsize=4096)
def _cached_cut(text: str) -> tuple[str, ...]:
    # No HMM: jieba's HMM guesses words missing from its dictionary at a third of the cut's cost,
    # and the models score within two points without it (character bigrams carry unknown words).
    return tuple(_tokenizer.lcut(text, HMM=False))


def tokenize(text: str, lang: str | None = None) -> list[str]:
    """Words of ``text`` (normalized here): jieba for Chinese, keeping Weibo emoticons whole."""
    return tokenize_normalized(normalize(text), lang)


def tokenize_normalized(clean: str, lang: str | None = None) -> list[str]:
    """``tokenize`` for a text already normalized (the analysis normalizes once)."""
    if (lang or language(clean)) == "en":
        return _EN_WORD.findall(clean)
    if _tokenizer is None:
        load()
    tokens: list[str] = []
    at = 0
    for match in _EMOTICON.finditer(clean):
        tokens.extend(_cached_cut(clean[at:match.start()]))
        tokens.append(match.group())
        at = match.end()
    tokens.extend(_cached_cut(clean[at:]))
    return [t for t in tokens if t.strip()]


def brand_words() -> frozenset[str]:
    return _brand_words
