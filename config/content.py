"""Operator-editable dialogue content, loaded from YAML in ``config/``.

``replies.yaml`` holds what the bot says (reply texts, FAQ); ``bot.yaml`` holds how it
understands and routes (intents, menu keys, levels, SLA). A malformed file stops start-up with
the file and line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from config.settings import ConfigError

HERE = Path(__file__).parent
REPLY_NAMES = (
    "welcome", "fallback", "offer_human", "non_text", "busy", "cancelled", "nothing_to_cancel", "flow_timed_out",
    "text_needed", "need_member", "bind_ask_phone", "bind_ask_code", "bad_phone", "bind_code_sent", "bind_bad_code",
    "bind_code_failed", "bind_done", "bind_already", "bind_unavailable", "points_balance", "points_history",
    "points_history_empty", "member_level", "level_next", "level_top", "complaint_ask_order",
    "complaint_bad_order", "complaint_ask_description", "complaint_done", "lead_ask_name", "lead_bad_name",
    "lead_ask_phone", "lead_ask_interest", "lead_done", "handoff_queued", "handoff_waiting", "csat_ask",
    "csat_bad", "csat_ask_comment", "csat_thanks",
)

REQUIRED_LIMITS = ("flow_timeout_seconds", "misses_before_human", "points_history_entries", "max_text_chars",
                   "otp_ttl_seconds", "otp_max_attempts")


@dataclass(frozen=True)
class FaqEntry:
    keywords: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class LevelRule:
    name: str
    min_points: int
    benefits: tuple[str, ...]


@dataclass(frozen=True)
class Sla:
    first_response_minutes: int
    resolution_hours: int


@dataclass(frozen=True)
class BotRules:
    """How the bot understands and routes (``bot.yaml``)."""

    brand_words: tuple[str, ...]
    intents: tuple[tuple[str, tuple[str, ...]], ...]  # in the order they are tried
    menu: Mapping[str, str]
    cancel_words: tuple[str, ...]
    limits: Mapping[str, int]
    levels: tuple[LevelRule, ...]
    complaint_categories: tuple[tuple[str, tuple[str, ...]], ...]
    urgent_words: tuple[str, ...]
    vip_level: str
    sla: Mapping[str, Sla]


@dataclass(frozen=True)
class BotContent:
    """Everything the bot says and decides by, loaded once per process."""

    texts: Mapping[str, str]
    faq: tuple[FaqEntry, ...]
    rules: BotRules

    def say(self, name: str, **values: Any) -> str:
        """The reply text ``name`` with its ``{placeholders}`` filled."""
        return self.texts[name].format(**values)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(f"{path}:{line}: {exc.problem}") from None


def _words(path: Path, where: str, value: Any) -> tuple[str, ...]:
    # YAML reads 12315 as a number; a word list means text, so numbers are taken as written.
    words = [str(w).strip() for w in value if isinstance(w, (str, int))] if isinstance(value, list) else []
    if not words or len(words) != len(value) or not all(words):
        raise ConfigError(f"{path}: {where} must be a non-empty list of words")
    return tuple(w.lower() for w in words)


def _mapping(path: Path, where: str, value: Any) -> dict:
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{path}: '{where}' must be a mapping")
    return value


def load_replies(path: Path) -> tuple[dict[str, str], tuple[FaqEntry, ...]]:
    data = _mapping(path, "replies", _read_yaml(path))
    texts = {}
    for name in REPLY_NAMES:
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise ConfigError(f"{path}: '{name}' must be a non-empty text")
        texts[name] = data[name]
    faq = []
    for number, entry in enumerate(data.get("faq") or [], start=1):
        answer = entry.get("answer") if isinstance(entry, dict) else None
        if not isinstance(answer, str) or not answer.strip():
            raise ConfigError(f"{path}: faq entry {number} needs a list of 'keywords' and an 'answer'")
        faq.append(FaqEntry(_words(path, f"faq entry {number} 'keywords'", entry.get("keywords")), answer))
    return texts, tuple(faq)


def load_rules(path: Path) -> BotRules:
    data = _mapping(path, "bot rules", _read_yaml(path))
    try:
        levels = tuple(LevelRule(str(lv["name"]), int(lv["min_points"]), tuple(lv["benefits"]))
                       for lv in data["levels"])
        sla = {p: Sla(int(v["first_response_minutes"]), int(v["resolution_hours"]))
               for p, v in _mapping(path, "sla", data["sla"]).items()}
        limits = {k: int(v) for k, v in _mapping(path, "limits", data["limits"]).items()}
        priority = _mapping(path, "priority", data["priority"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: levels, sla, limits and priority need all their fields ({exc})") from None
    missing = [k for k in REQUIRED_LIMITS if k not in limits]
    if missing:
        raise ConfigError(f"{path}: 'limits' is missing {', '.join(missing)}")
    if not levels or sorted(lv.min_points for lv in levels)[0] != 0:
        raise ConfigError(f"{path}: 'levels' needs a level with min_points 0")
    if set(sla) != {"P1", "P2", "P3", "P4"}:
        raise ConfigError(f"{path}: 'sla' must define P1, P2, P3 and P4")
    intents = tuple((name, _words(path, f"intent '{name}'", words))
                    for name, words in _mapping(path, "intents", data.get("intents")).items())
    menu = {str(k): str(v) for k, v in _mapping(path, "menu", data.get("menu")).items()}
    unknown = set(menu.values()) - {name for name, _ in intents}
    if unknown:
        raise ConfigError(f"{path}: menu keys point at unknown intents: {', '.join(sorted(unknown))}")
    vip = str(priority.get("vip_level", ""))
    if vip not in {lv.name for lv in levels}:
        raise ConfigError(f"{path}: priority.vip_level {vip!r} is not one of the levels")
    return BotRules(
        brand_words=tuple(data.get("brand_words") or ()), intents=intents, menu=menu,
        cancel_words=_words(path, "'cancel_words'", data.get("cancel_words")), limits=limits, levels=levels,
        complaint_categories=tuple((name, _words(path, f"category '{name}'", words)) for name, words in
                                   _mapping(path, "complaint_categories", data.get("complaint_categories")).items()),
        urgent_words=_words(path, "priority.urgent_words", priority.get("urgent_words")), vip_level=vip, sla=sla)


def load_content(replies: Path = HERE / "replies.yaml", rules: Path = HERE / "bot.yaml") -> BotContent:
    """Load and validate both files; raise ``ConfigError`` naming the file (and line)."""
    texts, faq = load_replies(replies)
    return BotContent(texts, faq, load_rules(rules))
