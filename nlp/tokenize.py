"""Tokenization: jieba with the brand's dictionary for Chinese, a word pattern for English.

jieba loads its dictionary once per process (about a second); ``load()`` does it up front so a
web or rq worker pays it at start, not on a customer's first message.
"""
from __future__ import annotations

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
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            _tokenizer = tokenizer
        new = {normalize(w) for w in brand_words} - _brand_words
        for word in new:
            _tokenizer.add_word(word, freq=2000)
        if new:
            _brand_words = _brand_words | new
            _cached_cut.cache_clear()


def language(text: str) -> str:
    """'zh' when CJK characters are at least a third of the letters, else 'en'."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text.lower()))
    return "zh" if cjk and cjk * 3 >= latin else "en"


@lru_cache(maxsize=4096)
def _cached_cut(text: str) -> tuple[str, ...]:
    return tuple(_tokenizer.lcut(text))


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
