"""Operator-editable dialogue content, loaded from YAML in ``config/``.

``replies.yaml`` and ``replies_en.yaml`` hold what the bot says, in Chinese and English;
``faq.yaml`` holds the FAQ knowledge base; ``bot.yaml`` holds how it understands and routes
(commands, menu keys, thresholds, levels, SLA). A malformed file stops start-up with the file and line.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import time as dt_time
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from config.settings import ConfigError

HERE = Path(__file__).parent
REPLY_NAMES = (
    "welcome", "greeting", "small_talk", "fallback", "offer_human", "non_text", "busy", "cancelled",
    "nothing_to_cancel", "flow_timed_out", "flow_left", "text_needed", "need_member", "bind_ask_phone",
    "bind_ask_code", "bad_phone", "bind_code_sent", "bind_bad_code", "bind_code_failed", "bind_done",
    "bind_already", "bind_unavailable", "points_balance", "points_history", "points_history_empty",
    "member_level", "level_next", "level_top", "complaint_ask_description", "complaint_ask_order",
    "complaint_bad_order", "complaint_opened", "complaint_urgent", "complaint_order_added", "complaint_detail_added",
    "complaint_done", "lead_ask_name", "lead_bad_name", "lead_ask_phone", "lead_ask_interest", "lead_done",
    "handoff_queued", "handoff_open_ticket", "handoff_waiting", "handoff_cancelled", "praise_thanks", "clarify", "faq_suggest",
    "faq_unknown", "csat_ask", "csat_bad", "csat_ask_comment", "csat_thanks",
)
LANGS = ("zh", "en")
# What a menu key or an exact command may ask for: an intent, or one of these finer requests.
REQUESTS = ("points_balance", "points_history", "member_level", "member_bind", "complaint", "lead", "human", "faq",
            "praise", "chitchat", "cancel")

REQUIRED_LIMITS = ("flow_timeout_seconds", "misses_before_human", "points_history_entries", "max_text_chars",
                   "otp_ttl_seconds", "otp_max_attempts")
REQUIRED_THRESHOLDS = ("intent", "complaint", "faq_answer", "faq_suggest", "faq_unprompted", "handoff_ack_seconds")


@dataclass(frozen=True)
class FaqEntry:
    """One knowledge-base entry: the ways customers ask it and the answer, per language."""

    id: str
    questions: Mapping[str, tuple[str, ...]]  # lang -> question variants
    answers: Mapping[str, str]  # lang -> answer

    def answer(self, lang: str) -> str:
        return self.answers.get(lang) or self.answers["zh"]

    def title(self, lang: str) -> str:
        """The first question: how the entry is shown when the bot offers it."""
        return (self.questions.get(lang) or self.questions["zh"])[0]


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
class BusinessHours:
    """When SLA clocks run (``bot.yaml`` ``sla_business_hours``): ``open`` to ``close`` on ISO
    ``days`` (1 = Monday) in ``zone``. Absent: around the clock."""

    days: frozenset[int]
    open: dt_time
    close: dt_time
    zone: str = "Asia/Shanghai"


@dataclass(frozen=True)
class BotRules:
    """How the bot understands and routes (``bot.yaml``)."""

    brand_words: tuple[str, ...]
    intents: tuple[tuple[str, tuple[str, ...]], ...]  # keyword hints, in the order they are tried
    menu: Mapping[str, str]  # EventKey -> request
    commands: Mapping[str, str]  # an exact short message -> request
    thresholds: Mapping[str, float]
    limits: Mapping[str, int]
    levels: tuple[LevelRule, ...]
    complaint_categories: tuple[tuple[str, tuple[str, ...]], ...]
    urgent_words: tuple[str, ...]
    urgent_categories: tuple[str, ...]
    vip_level: str
    sla: Mapping[str, Sla]
    order_formats: tuple[str, ...]  # regular expressions, each matching a whole order number
    business_words: tuple[str, ...]  # a lead, not a retail question: 加盟, 批发, 团购 ...
    bulk_quantity: int  # this many cups or boxes or more in one message is a lead
    business_hours: BusinessHours | None = None  # SLA clocks run only then; None: always

    @cached_property
    def complaint_words(self) -> tuple[str, ...]:
        """The words of every complaint category, for one pass that tells whether any is there."""
        return tuple(dict.fromkeys(word for _, words in self.complaint_categories for word in words))


@dataclass(frozen=True)
class CannedReply:
    """A ready-made answer the agent picks in the console (``canned_replies.yaml``)."""

    id: str
    titles: Mapping[str, str]  # lang -> what the agent sees
    texts: Mapping[str, str]  # lang -> what the customer gets; may hold {reference}

    def title(self, lang: str) -> str:
        return self.titles.get(lang) or self.titles["zh"]

    def text(self, lang: str, reference: str) -> str:
        return (self.texts.get(lang) or self.texts["zh"]).replace("{reference}", reference)


@dataclass(frozen=True)
class BotContent:
    """Everything the bot says and decides by, loaded once per process."""

    texts: Mapping[str, Mapping[str, str]]  # lang -> reply name -> text
    faq: tuple[FaqEntry, ...]
    rules: BotRules
    canned: tuple[CannedReply, ...] = ()  # the console's canned replies

    def say(self, name: str, lang: str = "zh", **values: Any) -> str:
        """The reply text ``name`` in ``lang`` (zh | en) with its ``{placeholders}`` filled."""
        return self.texts.get(lang, self.texts["zh"])[name].format(**values)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(f"{path}:{line}: {exc.problem}") from None


def _words(path: Path, where: str, value: Any) -> tuple[str, ...]:
    """A list of words to match, lower-cased (matching is on normalized text)."""
    return tuple(word.lower() for word in _texts(path, where, value))


def _mapping(path: Path, where: str, value: Any) -> dict:
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{path}: '{where}' must be a mapping")
    return value


def load_replies(path: Path) -> dict[str, str]:
    data = _mapping(path, "replies", _read_yaml(path))
    texts = {}
    for name in REPLY_NAMES:
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise ConfigError(f"{path}: '{name}' must be a non-empty text")
        texts[name] = data[name]
    for name in ("intent_names", "menu_choices"):
        value = data.get(name)
        if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
            raise ConfigError(f"{path}: '{name}' must map names to texts")
        texts.update({f"{name}.{key}": text for key, text in value.items()})
    return texts


def _texts(path: Path, where: str, value: Any, required: bool = True) -> tuple[str, ...]:
    # YAML reads 12315 as a number; a list of texts means text, so numbers are taken as written.
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) and str(v).strip()
                                                            for v in value):
        raise ConfigError(f"{path}: {where} must be a non-empty list of texts")
    return tuple(str(v).strip() for v in value)


def load_faq(path: Path) -> tuple[FaqEntry, ...]:
    data = _mapping(path, "faq", _read_yaml(path))
    entries, seen = [], set()
    for number, entry in enumerate(data.get("entries") or [], start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or entry["id"] in seen \
                or not entry["id"]:
            raise ConfigError(f"{path}: faq entry {number} needs a unique 'id'")
        where = f"faq entry {number} ({entry['id']})"
        answers = {"zh": entry.get("answer"), "en": entry.get("answer_en")}
        if not isinstance(answers["zh"], str) or not answers["zh"].strip():
            raise ConfigError(f"{path}: {where} needs an 'answer'")
        if answers["en"] is not None and not isinstance(answers["en"], str):
            raise ConfigError(f"{path}: {where}: 'answer_en' must be a text")
        questions = {"zh": _texts(path, f"{where} 'questions'", entry.get("questions")),
                     "en": _texts(path, f"{where} 'questions_en'", entry.get("questions_en"), required=False)}
        seen.add(entry["id"])
        entries.append(FaqEntry(entry["id"], questions, {k: v.strip() for k, v in answers.items() if v}))
    if not entries:
        raise ConfigError(f"{path}: 'entries' must list at least one FAQ entry")
    return tuple(entries)


def load_canned(path: Path) -> tuple[CannedReply, ...]:
    data = _mapping(path, "canned replies", _read_yaml(path))
    replies, seen = [], set()
    for number, entry in enumerate(data.get("replies") or [], start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"] \
                or entry["id"] in seen:
            raise ConfigError(f"{path}: canned reply {number} needs a unique 'id'")
        fields = {name: entry.get(name) for name in ("title", "title_en", "text", "text_en")}
        if not all(isinstance(fields[name], str) and fields[name].strip() for name in ("title", "text")) or \
                not all(value is None or isinstance(value, str) for value in fields.values()):
            raise ConfigError(f"{path}: canned reply {number} ({entry['id']}) needs a 'title' and a 'text'")
        seen.add(entry["id"])
        replies.append(CannedReply(entry["id"], {"zh": fields["title"], "en": fields["title_en"] or fields["title"]},
                                   {"zh": fields["text"].strip(), "en": (fields["text_en"] or fields["text"]).strip()}))
    return tuple(replies)


def load_rules(path: Path) -> BotRules:
    data = _mapping(path, "bot rules", _read_yaml(path))
    try:
        levels = tuple(LevelRule(str(lv["name"]), int(lv["min_points"]), tuple(lv["benefits"]))
                       for lv in data["levels"])
        sla = {p: Sla(int(v["first_response_minutes"]), int(v["resolution_hours"]))
               for p, v in _mapping(path, "sla", data["sla"]).items()}
        limits = {k: int(v) for k, v in _mapping(path, "limits", data["limits"]).items()}
        thresholds = {k: float(v) for k, v in _mapping(path, "thresholds", data["thresholds"]).items()}
        priority = _mapping(path, "priority", data["priority"])
        complaint = _mapping(path, "complaint", data["complaint"])
        lead = _mapping(path, "lead", data["lead"])
        bulk_quantity = int(lead["bulk_quantity"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: levels, sla, limits and priority need all their fields ({exc})") from None
    for name, given, required in (("limits", limits, REQUIRED_LIMITS), ("thresholds", thresholds,
                                                                         REQUIRED_THRESHOLDS)):
        missing = [k for k in required if k not in given]
        if missing:
            raise ConfigError(f"{path}: '{name}' is missing {', '.join(missing)}")
    if not levels or sorted(lv.min_points for lv in levels)[0] != 0:
        raise ConfigError(f"{path}: 'levels' needs a level with min_points 0")
    if set(sla) != {"P1", "P2", "P3", "P4"}:
        raise ConfigError(f"{path}: 'sla' must define P1, P2, P3 and P4")
    intents = tuple((name, _words(path, f"intent '{name}'", words))
                    for name, words in _mapping(path, "intents", data.get("intents")).items())
    menu = {str(k): str(v) for k, v in _mapping(path, "menu", data.get("menu")).items()}
    commands = {normalize_command(str(k)): str(v) for k, v in _mapping(path, "commands", data.get("commands")).items()}
    for where, targets in (("menu keys", menu), ("commands", commands)):
        unknown = set(targets.values()) - set(REQUESTS)
        if unknown:
            raise ConfigError(f"{path}: {where} point at unknown requests: {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(REQUESTS)})")
    if "cancel" not in commands.values():
        raise ConfigError(f"{path}: 'commands' needs at least one word for cancel")
    formats = _texts(path, "complaint.order_formats", complaint.get("order_formats"))
    for pattern in formats:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{path}: complaint.order_formats: {pattern!r} is not a regular expression ({exc})") \
                from None
    vip = str(priority.get("vip_level", ""))
    if vip not in {lv.name for lv in levels}:
        raise ConfigError(f"{path}: priority.vip_level {vip!r} is not one of the levels")
    return BotRules(
        brand_words=tuple(data.get("brand_words") or ()), intents=intents, menu=menu, commands=commands,
        thresholds=thresholds, limits=limits, levels=levels,
        complaint_categories=tuple((name, _words(path, f"category '{name}'", words)) for name, words in
                                   _mapping(path, "complaint_categories", data.get("complaint_categories")).items()),
        urgent_words=_words(path, "priority.urgent_words", priority.get("urgent_words")),
        urgent_categories=_words(path, "priority.urgent_categories", priority.get("urgent_categories")),
        vip_level=vip, sla=sla, order_formats=formats,
        business_words=_words(path, "lead.business_words", lead.get("business_words")), bulk_quantity=bulk_quantity,
        business_hours=_business_hours(path, data.get("sla_business_hours")))


def _business_hours(path: Path, value: Any) -> BusinessHours | None:
    if value is None:
        return None
    where = f"{path}: sla_business_hours"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping with days, open and close")
    days = value.get("days", [1, 2, 3, 4, 5, 6, 7])
    if not isinstance(days, list) or not days or not all(isinstance(d, int) and 1 <= d <= 7 for d in days):
        raise ConfigError(f"{where}.days must list ISO weekdays, 1 (Monday) to 7")
    try:
        opens, closes = (dt_time.fromisoformat(str(value[k])) for k in ("open", "close"))
    except (KeyError, ValueError):
        raise ConfigError(f"{where} needs open and close as HH:MM") from None
    if closes <= opens:
        raise ConfigError(f"{where}: close must be after open on the same day")
    zone = str(value.get("zone", "Asia/Shanghai"))
    try:
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(f"{where}.zone must be an IANA time zone, got {zone!r}") from None
    return BusinessHours(frozenset(days), opens, closes, zone)


def normalize_command(text: str) -> str:
    """A short message as a command key: lower case, full-width to half-width, no spaces,
    punctuation or emoji, and no trailing particles ("人工！" "取消吧" "算了啦" -> 人工 取消 算了)."""
    clean = "".join(ch for ch in unicodedata.normalize("NFKC", text).lower() if ch.isalnum())
    while len(clean) > 2 and clean[-1] in _PARTICLES:
        clean = clean[:-1]
    return clean


_PARTICLES = "吧啊呀呢哦嘛啦了哈"


def load_content(replies: Path = HERE / "replies.yaml", rules: Path = HERE / "bot.yaml",
                 faq: Path = HERE / "faq.yaml", replies_en: Path = HERE / "replies_en.yaml",
                 canned: Path = HERE / "canned_replies.yaml") -> BotContent:
    """Load and validate the files; raise ``ConfigError`` naming the file (and line)."""
    texts = {"zh": load_replies(replies), "en": load_replies(replies_en)}
    return BotContent(texts, load_faq(faq), load_rules(rules), load_canned(canned))
