"""Operator-editable dialogue content (reply texts, FAQ) loaded from YAML in ``config/``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from config.settings import ConfigError

DEFAULT_REPLIES = Path(__file__).with_name("replies.yaml")


@dataclass(frozen=True)
class FaqEntry:
    keywords: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class BotContent:
    """Reply texts the bot uses; ``fallback`` may contain ``{text}``, ``non_text`` ``{kind}``."""

    welcome: str
    fallback: str
    non_text: str
    busy: str
    faq: tuple[FaqEntry, ...]


def load_content(path: Path = DEFAULT_REPLIES) -> BotContent:
    """Load and validate the reply file; raise ``ConfigError`` naming the file (and line)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(f"{path}:{line}: {exc.problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of reply names to texts")
    texts = {}
    for name in ("welcome", "fallback", "non_text", "busy"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise ConfigError(f"{path}: '{name}' must be a non-empty text")
        texts[name] = data[name]
    faq = []
    for number, entry in enumerate(data.get("faq") or [], start=1):
        keywords = entry.get("keywords") if isinstance(entry, dict) else None
        answer = entry.get("answer") if isinstance(entry, dict) else None
        if not (isinstance(keywords, list) and keywords and all(isinstance(k, str) and k for k in keywords)
                and isinstance(answer, str) and answer):
            raise ConfigError(f"{path}: faq entry {number} needs a list of 'keywords' and an 'answer'")
        faq.append(FaqEntry(tuple(k.lower() for k in keywords), answer))
    return BotContent(faq=tuple(faq), **texts)
