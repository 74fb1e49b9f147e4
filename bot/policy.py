"""Ticket category, priority and SLA from the operator's rules (``config/bot.yaml``)."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from config.content import BotRules, BusinessHours
from nlp.sentiment import Sentiment
from nlp.text import find_terms


def category(text: str, rules: BotRules) -> str:
    """The complaint category with the most of its words in ``text``, the one listed first on a
    tie; an urgent category (food safety, legal threats) whenever one of its words is there.
    "other" when no category's word is."""
    if not find_terms(text, rules.complaint_words):  # most messages: one pass, and done
        return "other"
    hits = [(name, len(find_terms(text, words))) for name, words in rules.complaint_categories]
    urgent = next((name for name, count in hits if count and name in rules.urgent_categories), None)
    best = max(hits, key=lambda hit: hit[1])  # max keeps the first of equals
    return urgent or (best[0] if best[1] else "other")


def priority(text: str, category_name: str, mood: Sentiment, level_name: str | None, rules: BotRules) -> str:
    """P1 for an urgent category (food safety, legal threats) or urgent word (injury, media,
    lawyers ...); else P3, one step up for strong negative sentiment and one for members at or
    above the VIP level."""
    if category_name in rules.urgent_categories or find_terms(text, rules.urgent_words):
        return "P1"
    rank = 3
    if mood.strong:
        rank -= 1
    order = [lv.name for lv in sorted(rules.levels, key=lambda lv: lv.min_points)]
    if level_name in order and order.index(level_name) >= order.index(rules.vip_level):
        rank -= 1
    return f"P{max(rank, 1)}"


def due_times(priority_name: str, now: datetime, rules: BotRules) -> tuple[datetime, datetime]:
    """A new ticket's first-response and resolution due times: the SLA of its priority, counted in
    business hours when bot.yaml sets ``sla_business_hours``, else around the clock."""
    sla = rules.sla[priority_name]
    hours = rules.business_hours
    if hours is None:
        return now + timedelta(minutes=sla.first_response_minutes), now + timedelta(hours=sla.resolution_hours)
    return (add_business_time(now, timedelta(minutes=sla.first_response_minutes), hours),
            add_business_time(now, timedelta(hours=sla.resolution_hours), hours))


def add_business_time(start: datetime, span: timedelta, hours: BusinessHours) -> datetime:
    """``start`` plus ``span`` of business time: the clock runs from ``hours.open`` to
    ``hours.close`` on business days only, in ``hours.zone``; returned in ``start``'s zone. A
    ticket opened out of hours starts counting when the next business day opens."""
    zone = ZoneInfo(hours.zone)
    moment, left = start.astimezone(zone), span
    for _ in range(366 * 2 + int(span / timedelta(hours=1))):  # bounded: every step closes a day or ends
        day = moment.date()
        opens = datetime.combine(day, hours.open, zone)
        closes = datetime.combine(day, hours.close, zone)
        if moment.isoweekday() in hours.days and moment < closes:
            moment = max(moment, opens)
            if moment + left <= closes:
                return (moment + left).astimezone(start.tzinfo)
            left -= closes - moment
        moment = datetime.combine(day + timedelta(days=1), time.min, zone)
    raise ValueError(f"no business time within reach of {start} for {span}")


UNITS = {"zh": ("天", "小时", "分钟"), "en": (" day", " hour", " minute")}


def response_time_text(priority_name: str, rules: BotRules, lang: str = "zh") -> str:
    """The promised first response in words a customer reads: 15分钟, 4小时, 1天 (15 minutes)."""
    minutes = rules.sla[priority_name].first_response_minutes
    day, hour, minute = UNITS.get(lang, UNITS["zh"])
    amount, unit = ((minutes // (24 * 60), day) if minutes % (24 * 60) == 0 else
                    (minutes // 60, hour) if minutes % 60 == 0 else (minutes, minute))
    plural = "s" if lang == "en" and amount != 1 else ""
    return f"{amount}{unit}{plural}"
