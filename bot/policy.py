"""Ticket category, priority and SLA from the operator's rules (``config/bot.yaml``)."""
from __future__ import annotations

from datetime import datetime, timedelta

from config.content import BotRules
from nlp.sentiment import Sentiment
from nlp.text import find_terms


def category(text: str, rules: BotRules) -> str:
    return next((name for name, words in rules.complaint_categories if find_terms(text, words)), "other")


def priority(text: str, mood: Sentiment, level_name: str | None, rules: BotRules) -> str:
    """P1 for urgent words (injury, media, lawyers ...); else P3, one step up for strong negative
    sentiment and one for members at or above the VIP level."""
    if find_terms(text, rules.urgent_words):
        return "P1"
    rank = 3
    if mood.strong:
        rank -= 1
    order = [lv.name for lv in sorted(rules.levels, key=lambda lv: lv.min_points)]
    if level_name in order and order.index(level_name) >= order.index(rules.vip_level):
        rank -= 1
    return f"P{max(rank, 1)}"


def due_times(priority_name: str, now: datetime, rules: BotRules) -> tuple[datetime, datetime]:
    sla = rules.sla[priority_name]
    return now + timedelta(minutes=sla.first_response_minutes), now + timedelta(hours=sla.resolution_hours)


def response_time_text(priority_name: str, rules: BotRules) -> str:
    """The promised first response in words a customer reads: 15分钟, 4小时, 1天."""
    minutes = rules.sla[priority_name].first_response_minutes
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)}天"
    if minutes % 60 == 0:
        return f"{minutes // 60}小时"
    return f"{minutes}分钟"
