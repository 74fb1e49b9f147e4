"""Keywords by TF-IDF over jieba's IDF table, and exact watch-term matching."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable

from nlp.text import find_terms
from nlp.tokenize import brand_words, tokenize

STOPWORDS_FILE = Path(__file__).with_name("data") / "stopwords.txt"


@lru_cache(maxsize=1)
def _idf() -> tuple[dict[str, float], float, frozenset[str]]:
    import jieba.analyse

    extractor = jieba.analyse.TFIDF()
    stop = set(extractor.stop_words)
    if STOPWORDS_FILE.exists():
        stop |= {w.strip() for w in STOPWORDS_FILE.read_text(encoding="utf-8").splitlines() if w.strip()}
    return extractor.idf_freq, extractor.median_idf, frozenset(stop)


def stopwords() -> frozenset[str]:
    """jieba's stop words and ours (``nlp/data/stopwords.txt``)."""
    return _idf()[2]


def keywords(text: str, k: int = 5, tokens: list[str] | None = None) -> list[str]:
    """The ``k`` most telling words of ``text``: TF x IDF, the brand's own words first."""
    idf, median, stop = _idf()
    words = tokens if tokens is not None else tokenize(text)
    counts: dict[str, int] = {}
    for word in words:
        if len(word) < 2 or word in stop or word.isdigit() or not any(ch.isalnum() for ch in word):
            continue
        counts[word] = counts.get(word, 0) + 1
    brand = brand_words()
    scored = sorted(counts, key=lambda w: (w in brand, counts[w] * idf.get(w, median)), reverse=True)
    return scored[:k]


def watch_terms(text: str, terms: Iterable[str]) -> list[str]:
    """Which watch terms (brand, product, competitor, campaign) occur, whole words for Latin ones."""
    return sorted(set(find_terms(text, [t.lower() for t in terms])))
