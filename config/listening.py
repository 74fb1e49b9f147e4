"""Listening rules (``config/listening.yaml``): what a new Weibo or Twitter mention becomes.

Loaded and validated at start-up; a malformed file raises ``ConfigError`` naming the file and
the field, as ``config/content.py`` does for the bot's files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from config.settings import ConfigError

LISTENING_FILE = Path(__file__).parent / "listening.yaml"
CHANNELS = ("weibo", "twitter")


@dataclass(frozen=True)
class ListeningRules:
    """The operator's rules for mentions; see ``listening.yaml`` for what each field means."""

    lead_intents: tuple[str, ...]
    lead_min_confidence: float
    lead_words: tuple[str, ...]  # lower case, as matching is on normalized text
    complaint_intents: tuple[str, ...]
    complaint_min_confidence: float
    complaint_negative_score: float
    complaint_words: tuple[str, ...]  # lower case
    influential_followers: int
    strong_negative_score: float
    interval_seconds: int
    page_size: int
    max_search_terms: int
    # A channel's own interval, where its quota calls for one (Weibo counts calls per hour and day).
    channel_intervals: Mapping[str, int] = field(default_factory=dict)

    def interval_for(self, channel: str) -> int:
        """Seconds between two scheduled polls of ``channel``."""
        return self.channel_intervals.get(channel, self.interval_seconds)


def _section(path: Path, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: '{name}' must be a mapping")
    return value


def _words(path: Path, where: str, value: Any, required: bool = True) -> tuple[str, ...]:
    if not isinstance(value, list) or (required and not value) or \
            not all(isinstance(w, str) and w.strip() for w in value):
        raise ConfigError(f"{path}: '{where}' must be a list of words")
    return tuple(w.strip().lower() for w in value)


def _number(path: Path, where: str, value: Any, low: float, high: float, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"{path}: '{where}' must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{path}: '{where}' must be between {low} and {high}, got {value!r}")
    return kind(value)


def load_listening(path: Path = LISTENING_FILE) -> ListeningRules:
    """Read and validate the rules; ``ConfigError`` names the file and what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(f"{path}:{line}: {exc.problem}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the listening rules must be a mapping")
    lead, complaint = _section(path, data, "lead"), _section(path, data, "complaint")
    priority, polling = _section(path, data, "priority"), _section(path, data, "polling")
    return ListeningRules(
        lead_intents=_words(path, "lead.intents", lead.get("intents")),
        lead_min_confidence=_number(path, "lead.min_confidence", lead.get("min_confidence"), 0, 1),
        lead_words=_words(path, "lead.words", lead.get("words", []), required=False),
        complaint_intents=_words(path, "complaint.intents", complaint.get("intents")),
        complaint_min_confidence=_number(path, "complaint.min_confidence", complaint.get("min_confidence"), 0, 1),
        complaint_negative_score=_number(path, "complaint.negative_score", complaint.get("negative_score"), 0, 1),
        complaint_words=_words(path, "complaint.words", complaint.get("words", []), required=False),
        influential_followers=_number(path, "priority.influential_followers",
                                      priority.get("influential_followers"), 0, 10**12, int),
        strong_negative_score=_number(path, "priority.strong_negative_score",
                                      priority.get("strong_negative_score"), 0, 1),
        interval_seconds=_number(path, "polling.interval_seconds", polling.get("interval_seconds"), 10, 86_400, int),
        page_size=_number(path, "polling.page_size", polling.get("page_size"), 5, 100, int),
        max_search_terms=_number(path, "polling.max_search_terms", polling.get("max_search_terms"), 0, 100, int),
        channel_intervals=_intervals(path, polling.get("channel_interval_seconds", {})),
    )


def _intervals(path: Path, value: Any) -> dict[str, int]:
    where = "polling.channel_interval_seconds"
    if not isinstance(value, Mapping) or not all(channel in CHANNELS for channel in value):
        raise ConfigError(f"{path}: '{where}' must map {' or '.join(CHANNELS)} to seconds")
    return {channel: _number(path, f"{where}.{channel}", seconds, 10, 86_400, int) for channel, seconds in value.items()}
