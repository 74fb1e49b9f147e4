"""Intent values, and intents by keyword rules (the hints that the trained model weighs)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from nlp.text import find_terms

# What a customer's message asks for (nlp/data/README.md defines each).
INTENTS = ("points_balance", "member_level", "member_bind", "complaint", "lead", "human", "faq", "praise",
           "chitchat")


@dataclass(frozen=True)
class Intent:
    name: str
    confidence: float
    keyword: str | None = None


def rule_intent(text: str, intents: Sequence[tuple[str, Sequence[str]]]) -> Intent | None:
    """The first intent (in the given order) with a keyword in ``text``."""
    for name, keywords in intents:
        found = find_terms(text, keywords)
        if found:
            return Intent(name, 0.9, found[0])
    return None
