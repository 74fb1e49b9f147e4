"""Text normalization and term matching: pure functions, no I/O."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Iterable

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@lru_cache(maxsize=1)
def _traditional_to_simplified() -> dict[int, str]:
    """OpenCC's character table (TSCharacters), first candidate: a one-pass str.translate, cheap
    enough for every text. Phrase-level conversion (OpenCC's TSPhrases) is left out on purpose."""
    import opencc

    table = Path(opencc.__file__).with_name("dictionary") / "TSCharacters.txt"
    mapping = {}
    for line in table.read_text(encoding="utf-8").splitlines():
        traditional, _, simplified = line.partition("\t")
        if len(traditional) == 1 and simplified:
            mapping[ord(traditional)] = simplified.split()[0]
    return mapping


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """NFKC (full-width letters and digits to half-width), no control characters, lower case,
    traditional Chinese characters to simplified (臺灣 -> 台湾). Cached: the router's intent,
    FAQ and sentiment rules each match the same message, and would otherwise normalize it each time."""
    clean = _CONTROL.sub("", unicodedata.normalize("NFKC", text)).strip().lower()
    table = _traditional_to_simplified()
    # Most texts have no traditional character: a set test is far cheaper than translate().
    return clean if _traditional_chars().isdisjoint(clean) else clean.translate(table)


@lru_cache(maxsize=1)
def _traditional_chars() -> frozenset[str]:
    return frozenset(chr(code) for code in _traditional_to_simplified())


# A term with a gap, "肚子…疼" (or "肚子...疼"), matches its parts in that order with up to
# GAP_CHARS characters of one clause between them (GAP_WORDS words in English): a customer
# puts adverbs and measures inside a phrase ("肚子一直疼", "拉了两天肚子", "made my kid sick"),
# which no fixed word list can spell out.
GAP_CHARS, GAP_WORDS = 6, 4
_GAP = re.compile(r"…|\.\.\.")
_IN_CLAUSE = rf"[^，。！？；,.!?;\s]{{0,{GAP_CHARS}}}"
_IN_SENTENCE = rf"\s+(?:[a-z0-9']+\s+){{0,{GAP_WORDS}}}"


@lru_cache(maxsize=256)
def _pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    # Latin terms must stand as whole words ("hi" is not in "this"); Chinese has no spaces, so a
    # Chinese term matches anywhere. Longest first, so "积分明细" wins over "积分".
    parts = []
    for term in sorted(set(terms), key=len, reverse=True):
        pieces = [re.escape(piece.strip()) for piece in _GAP.split(term)]
        escaped = (_IN_SENTENCE if term.isascii() else _IN_CLAUSE).join(pieces)
        parts.append(rf"(?<![a-z0-9]){escaped}(?![a-z0-9])" if term.isascii() else escaped)
    return re.compile("|".join(parts))


def find_terms(text: str, terms: Iterable[str]) -> list[str]:
    """The terms (already normalized) that occur in ``text`` (normalized here), in text order."""
    terms = tuple(terms)
    if not terms:
        return []
    return _pattern(terms).findall(normalize(text))
