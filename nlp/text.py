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


@lru_cache(maxsize=256)
def _pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    # Latin terms must stand as whole words ("hi" is not in "this"); Chinese has no spaces, so a
    # Chinese term matches anywhere. Longest first, so "积分明细" wins over "积分".
    parts = []
    for term in sorted(set(terms), key=len, reverse=True):
        escaped = re.escape(term)
        parts.append(rf"(?<![a-z0-9]){escaped}(?![a-z0-9])" if term.isascii() else escaped)
    return re.compile("|".join(parts))


def find_terms(text: str, terms: Iterable[str]) -> list[str]:
    """The terms (already normalized) that occur in ``text`` (normalized here), in text order."""
    terms = tuple(terms)
    if not terms:
        return []
    return _pattern(terms).findall(normalize(text))
