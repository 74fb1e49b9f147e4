"""The KPIs of DESIGN.md ("KPI definitions"), computed from the stored events.

Service KPIs (``SERVICE``) come from messages, replies, tickets and CSAT answers; fan KPIs
(``FANS``) from follower snapshots, mentions and leads. Each row is one channel and account over
a period (or one day of it), and, for the service KPIs that belong to someone, one agent. A rate
is given with its numerator and denominator beside it (``response_rate``,
``response_rate_numerator``, ``response_rate_denominator``); a rate with nothing to count is
None, not 0.

Periods are the brand's days (``CRMBOT_TIMEZONE``): ``from`` and ``to`` are dates, both included.
Every event belongs to the day of the thing it measures, whenever it arrived: a CSAT answer to the
day its question was asked, a ticket's resolution and first response to the day it was opened, a
lead's conversion to the day it was captured. So a late event corrects its own day, and a
day's figures are final only once its tickets are closed.

The definitions, each on its function: ``response_rate`` ... ``net_sentiment``.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from itertools import accumulate
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, func, insert, or_, select

from config.content import BotRules
from crm_store import models
from crm_store.models import Conversation, Message, Ticket, as_utc, utcnow
from crm_store.uow import UnitOfWork

SERVICE = ("response_rate", "response_time_median_s", "response_time_p90_s", "bot_latency_p50_ms",
           "bot_latency_p99_ms", "resolution_rate", "self_service_rate", "satisfaction_rate", "csat_answer_rate")
FANS = ("followers", "net_growth", "reach", "engagement", "reposts_comments", "conversion_rate", "net_sentiment")
RATES = frozenset({"response_rate", "resolution_rate", "self_service_rate", "satisfaction_rate", "csat_answer_rate",
                   "conversion_rate", "net_sentiment"})
# The service KPIs that have an agent: who holds (held) the ticket.
BY_AGENT = ("response_time_median_s", "response_time_p90_s", "resolution_rate", "satisfaction_rate",
            "csat_answer_rate", "sla_breaches")
# Beside DESIGN.md's: tickets opened in the period that missed a due time of their SLA.
SERVICE_EXTRA = ("sla_breaches",)

# Inbound kinds a customer expects an answer to (events such as subscribe or a location report
# are not messages to answer; a menu click is a request).
NEEDS_ANSWER = ("text", "image", "voice", "video", "location", "link", "menu_click")
BOT_TARGET = timedelta(seconds=5)  # DESIGN.md: a bot answer counts within 5 s
ANSWER_FAILED = (models.FAILED, models.UNREACHABLE, models.QUOTA_EXCEEDED)


@dataclass(frozen=True)
class Period:
    """Brand days ``start`` .. ``end`` (both included) in ``zone``, and their UTC bounds."""

    start: date
    end: date
    zone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"a period ends on or after its start: {self.start} .. {self.end}")
        if self.start.year < 1970 or self.end.year > 2100:
            raise ValueError(f"a period lies between 1970 and 2100: {self.start} .. {self.end}")

    @property
    def since(self) -> datetime:
        """The period's first moment, in UTC (SQLite compares times as the text of their UTC
        wall clock, so a bound in another zone would be read as if it were UTC)."""
        return datetime.combine(self.start, time.min, ZoneInfo(self.zone)).astimezone(timezone.utc)

    @property
    def until(self) -> datetime:
        """The first moment after the period, in UTC."""
        return datetime.combine(self.end + timedelta(days=1), time.min, ZoneInfo(self.zone)).astimezone(timezone.utc)

    def day_of(self, moment: datetime) -> date:
        return brand_day(moment, self.zone)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


def brand_day(moment: datetime, zone: str) -> date:
    """The brand's day (in ``zone``) of a stored UTC time."""
    return as_utc(moment).astimezone(ZoneInfo(zone)).date()


Key = tuple[str, str, str | None, date | None]  # channel, account, agent (None: everyone), day (None: the period)


class _Rows:
    """KPI rows being filled: numerators, denominators and samples by key."""

    def __init__(self, period: Period, by_day: bool) -> None:
        self.period, self.by_day = period, by_day
        self.counts: dict[Key, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.values: dict[Key, dict[str, Any]] = defaultdict(dict)
        self.latencies: dict[Key, Counter[int]] = defaultdict(Counter)  # bot latency ms -> replies
        self.response_times: dict[Key, list[int]] = defaultdict(list)  # first response ms, one per ticket

    def keys(self, channel: str, account: str, moment: datetime | date, agent: str | None = None) -> list[Key]:
        """The rows an event at ``moment`` (or on a brand day) counts in: its channel's for the
        period (and its day's), and its agent's too, when it has one."""
        found: list[Key] = [(channel, account, None, None)]
        if self.by_day:
            day = self.period.day_of(moment) if isinstance(moment, datetime) else moment
            found.append((channel, account, None, day))
        if agent:
            found += [(channel, account, agent, k[3]) for k in list(found)]
        return found

    def count(self, keys: Iterable[Key], name: str, numerator: bool, denominator: bool = True) -> None:
        for key in keys:
            if denominator:
                self.counts[key][f"{name}_denominator"] += 1
            if numerator:
                self.counts[key][f"{name}_numerator"] += 1

    def add(self, keys: Iterable[Key], name: str, amount: float) -> None:
        for key in keys:
            self.counts[key][name] += amount

    def rows(self, names: Sequence[str]) -> list[dict[str, Any]]:
        out = []
        for key in sorted(set(self.counts) | set(self.latencies) | set(self.response_times) | set(self.values),
                          key=lambda k: (k[0], k[1], k[2] or "", k[3] or date.min)):
            channel, account, agent, day = key
            row: dict[str, Any] = {"channel": channel, "account": account, "agent": agent,
                                   "day": day.isoformat() if day else None}
            counts = self.counts.get(key, {})
            for name in names:
                if agent is not None and name not in BY_AGENT:
                    continue
                if name in RATES:
                    n, d = counts.get(f"{name}_numerator", 0), counts.get(f"{name}_denominator", 0)
                    row[name] = round(n / d, 4) if d else None
                    row[f"{name}_numerator"], row[f"{name}_denominator"] = _int(n), _int(d)
                elif name in self.values.get(key, {}) or name in ("followers", "net_growth"):
                    row[name] = self.values.get(key, {}).get(name)  # None: no follower count known
                elif name == "response_time_median_s":  # and response_time_p90_s, from one sort
                    times = sorted(self.response_times.get(key, ()))
                    total = len(times)
                    # The median as statistics.median has it: the mean of the middle two of an even count.
                    row[name] = round((times[(total - 1) // 2] + times[total // 2]) / 2 / 1000, 1) if total else None
                    row["response_time_tickets"] = total
                    row["response_time_p90_s"] = round(times[_rank_index(total, 0.9)] / 1000, 1) if total else None
                elif name == "bot_latency_p50_ms":  # and bot_latency_p99_ms
                    latencies = self.latencies.get(key, Counter())
                    total = sum(latencies.values())
                    p50, p99 = _counted_at(latencies, [_rank_index(total, 0.5), _rank_index(total, 0.99)]) \
                        if total else (None, None)
                    row[name], row["bot_latency_replies"], row["bot_latency_p99_ms"] = p50, total, p99
                elif name in ("response_time_p90_s", "bot_latency_p99_ms"):
                    continue  # given with the median, the p50
                else:
                    row[name] = _int(counts.get(name, 0))
            out.append(row)
        return out


def _int(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def counted_rank(counts: Mapping[Any, int], share: float) -> Any:
    """The nearest-rank percentile over values given with how often each occurs: the smallest
    value with at least ``share`` of all at or below it; None when there are none."""
    total = sum(counts.values())
    return _counted_at(counts, [_rank_index(total, share)])[0] if total else None


def _rank_index(total: int, share: float) -> int:
    return max(math.ceil(share * total), 1) - 1


def _counted_at(counts: Mapping[Any, int], indexes: Sequence[int]) -> list[Any]:
    """The values at ``indexes`` (from 0) of the sorted values that ``counts`` holds: the first
    value whose running count passes the index (sorted once, then bisected)."""
    ordered = sorted(counts)
    running = list(accumulate(map(counts.__getitem__, ordered)))
    return [ordered[bisect_right(running, index)] for index in indexes]


# ---------------------------------------------------------------------------------- service
def first_response_minutes(rules: BotRules) -> dict[str, int]:
    """The SLA's first-response minutes per priority, from bot.yaml's rules (``BotRules.sla``)."""
    return {priority: sla.first_response_minutes for priority, sla in rules.sla.items()}


def service_kpis(uow: UnitOfWork, period: Period, first_response_minutes: Mapping[str, int], *,
                 channel: str | None = None, account: str | None = None, agent: str | None = None,
                 by_day: bool = False, fresh: bool = False, max_age: timedelta | None = None) -> list[dict[str, Any]]:
    """The service KPIs per channel and account (and agent, for those that have one) over
    ``period``, plus one row per day with ``by_day``. ``first_response_minutes``: the SLA's first
    response time per priority (bot.yaml ``sla``), the target for a message a ticket waits on.

    They come from the day rollups (``kpi_days`` of the messages, ``kpi_ticket_days`` of the
    tickets), brought up to date first where a day may have changed (``refresh_stale``; with
    ``max_age``, a rollup younger than that is taken as it is: a dashboard under live traffic need
    not recompute today on every read); ``fresh`` computes them from the messages and tickets
    instead (what the rollups must equal)."""
    rows = _Rows(period, by_day)
    if fresh:
        days = message_days(uow, period, first_response_minutes, channel, account)
    else:
        refresh_stale(uow, period, first_response_minutes, max_age)
        days = rolled_up(uow, period, channel, account)
    for (day, day_channel, day_account), figures in days.items():
        keys = rows.keys(day_channel, day_account, day)
        rows.add(keys, "response_rate_numerator", figures.answered)
        rows.add(keys, "response_rate_denominator", figures.needing)
        rows.add(keys, "self_service_rate_numerator", figures.self_served)
        rows.add(keys, "self_service_rate_denominator", figures.conversation_days)
        for key in keys:
            rows.latencies[key].update(figures.latency)
    _add_tickets(rows, ticket_days(uow, period, channel, account) if fresh else
                 rolled_up_tickets(uow, period, channel, account))
    found = rows.rows(SERVICE + SERVICE_EXTRA)
    if account:
        found = [r for r in found if r["account"] == account]
    if agent:
        found = [r for r in found if r["agent"] == agent]
    return found


def _in_period(column: Any, period: Period) -> Any:
    return and_(column >= period.since, column < period.until)


@dataclass
class MessageDay:
    """The message-derived service figures of one brand day, channel and account (a ``KpiDay``).

    **response_rate** = ``answered`` ÷ ``needing``: the customer messages (inbound, of a kind that
    asks for an answer: text, media, location, link, menu click) that came that day, and those of
    them answered within target: by the bot within 5 s (its passive reply, or a reply sent for
    it, not failed), or by an agent who wrote in the conversation after the message, within the
    first-response time of the SLA of the ticket open there at the time.

    **self_service_rate** = ``self_served`` ÷ ``conversation_days``: the conversations a customer
    wrote in that day, and those of them in which no ticket was opened that day (a period counts
    each conversation once per day it was active).

    **bot_latency_p50_ms**, **bot_latency_p99_ms**: ``latency`` counts the bot's passive replies
    by their latency in whole milliseconds (from the message's arrival to its reply written, as
    the webhook measured it); a period's percentiles are the nearest-rank 50th and 99th over them."""

    needing: int = 0
    answered: int = 0
    conversation_days: int = 0
    self_served: int = 0
    latency: Counter[int] = field(default_factory=Counter)


DayKey = tuple[date, str, str]  # brand day, channel, account


def message_days(uow: UnitOfWork, period: Period, sla: Mapping[str, int], channel: str | None = None,
                 account: str | None = None) -> dict[DayKey, MessageDay]:
    """The ``MessageDay`` of every day, channel and account of ``period``, from the messages."""
    where = [Message.direction == "in", Message.kind.in_(NEEDS_ANSWER), _in_period(Message.created_at, period)]
    if channel:
        where.append(Conversation.channel == channel)
    if account:
        where.append(Conversation.account == account)
    inbound = uow.execute(select(Message.id, Message.conversation_id, Message.created_at, Conversation.channel,
                                 Conversation.account).join(Conversation, Conversation.id == Message.conversation_id)
                          .where(*where).order_by(Message.id)).all()
    days: dict[DayKey, MessageDay] = defaultdict(MessageDay)
    if not inbound:
        return {}
    conversations = sorted({row.conversation_id for row in inbound})
    # Replies the bot gave to these messages, and what agents wrote in these conversations (from
    # the period's start: an answer comes after its message).
    bot_replies: dict[int, list[tuple[datetime, str | None, Any]]] = defaultdict(list)
    agent_says: dict[int, list[datetime]] = defaultdict(list)
    for chunk in _chunks(conversations):
        for reply_to, created, delivery, attributes in uow.execute(
                select(Message.reply_to_id, Message.created_at, Message.delivery, Message.attributes).where(
                    Message.conversation_id.in_(chunk), Message.direction == "out", Message.author == "bot",
                    Message.reply_to_id.is_not(None), Message.created_at >= period.since)):
            bot_replies[reply_to].append((as_utc(created), delivery, attributes))
        for conversation_id, created in uow.execute(
                select(Message.conversation_id, Message.created_at).where(
                    Message.conversation_id.in_(chunk), Message.direction == "out",
                    Message.author.like("agent:%"), Message.created_at >= period.since)):
            agent_says[conversation_id].append(as_utc(created))
    tickets = _tickets_of(uow, conversations)
    active: dict[tuple[int, date], DayKey] = {}
    for message_id, conversation_id, created, msg_channel, msg_account in inbound:
        arrived = as_utc(created)
        day = period.day_of(arrived)
        figures = days[(day, msg_channel, msg_account)]
        active[(conversation_id, day)] = (day, msg_channel, msg_account)
        answered = any(at - arrived <= BOT_TARGET and delivery not in ANSWER_FAILED
                       for at, delivery, _ in bot_replies.get(message_id, ()))
        if not answered:
            ticket = next((t for t in tickets.get(conversation_id, ()) if t[0] <= arrived and (
                t[1] is None or t[1] > arrived)), None)
            if ticket is not None:
                target = timedelta(minutes=sla.get(ticket[2], 0))
                answered = any(arrived < at <= arrived + target for at in agent_says.get(conversation_id, ()))
        figures.needing += 1
        figures.answered += answered
        for _, delivery, attributes in bot_replies.get(message_id, ()):
            if delivery == models.PASSIVE and isinstance(attributes, Mapping) and "latency_ms" in attributes:
                figures.latency[int(attributes["latency_ms"])] += 1
    for (conversation_id, day), key in active.items():
        days[key].conversation_days += 1
        days[key].self_served += not any(period.day_of(t[0]) == day for t in tickets.get(conversation_id, ()))
    return dict(days)


def rolled_up(uow: UnitOfWork, period: Period, channel: str | None = None, account: str | None = None
              ) -> dict[DayKey, MessageDay]:
    """``message_days`` as the rollups hold them."""
    return {(row.day, row.channel, row.account): MessageDay(
        row.needing, row.answered, row.conversation_days, row.self_served,
        Counter({int(ms): n for ms, n in (row.latency or {}).items()}))
        for row in _rollups(uow, models.KpiDay, period, channel, account)}


def _rollups(uow: UnitOfWork, table: Any, period: Period, channel: str | None, account: str | None) -> Any:
    """The rows of a rollup ``table`` for the days of ``period`` (not their markers), of
    ``channel`` and ``account`` when given."""
    where = [table.day >= period.start, table.day <= period.end, table.channel != MARKER]
    if channel:
        where.append(table.channel == channel)
    if account:
        where.append(table.account == account)
    return uow.session.scalars(select(table).where(*where))


# A rollup row per refreshed day, whatever happened that day: a day with nothing to count is
# known to be empty, not missing.
MARKER = ""


def refresh_days(uow: UnitOfWork, days: Sequence[date], zone: str, sla: Mapping[str, int]) -> int:
    """Compute the rollups of these brand days (``kpi_days`` and ``kpi_ticket_days``) and replace
    theirs; returns the rows written."""
    return _refresh_message_days(uow, days, zone, sla) + refresh_ticket_days(uow, days, zone)


def _refresh_message_days(uow: UnitOfWork, days: Sequence[date], zone: str, sla: Mapping[str, int]) -> int:
    """Compute the message rollups of these brand days from the messages and replace theirs
    (idempotent: a refresh run twice, or by two workers, leaves the same rows)."""
    newest = uow.execute(select(func.max(Message.id))).scalar() or 0
    written = 0
    for day in sorted(set(days)):
        figures = message_days(uow, Period(day, day, zone), sla)
        uow.execute(delete(models.KpiDay).where(models.KpiDay.day == day))
        rows = [{"day": day, "channel": key[1], "account": key[2], "needing": f.needing, "answered": f.answered,
                 "conversation_days": f.conversation_days, "self_served": f.self_served,
                 "latency": {str(ms): n for ms, n in sorted(f.latency.items())}, "through_message_id": newest,
                 "refreshed_at": utcnow()} for key, f in figures.items()]
        rows.append({"day": day, "channel": MARKER, "account": MARKER, "needing": 0, "answered": 0,
                     "conversation_days": 0, "self_served": 0, "latency": {}, "through_message_id": newest,
                     "refreshed_at": utcnow()})
        uow.execute(insert(models.KpiDay), rows)
        written += len(rows)
    return written


def stale_days(uow: UnitOfWork, period: Period, sla: Mapping[str, int], max_age: timedelta | None = None
               ) -> list[date]:
    """The days of ``period`` whose rollup is missing, or may have changed since it was made: a
    message came after it, and it was made before the day was over plus the longest SLA first
    response (after that, nothing can change a day's message figures), and more than ``max_age``
    ago (None: any time ago)."""
    newest = uow.execute(select(func.max(Message.id))).scalar() or 0
    settle = timedelta(minutes=max(sla.values(), default=0))
    markers = {day: (through, as_utc(refreshed)) for day, through, refreshed in uow.execute(
        select(models.KpiDay.day, models.KpiDay.through_message_id, models.KpiDay.refreshed_at).where(
            models.KpiDay.channel == MARKER, models.KpiDay.day >= period.start, models.KpiDay.day <= period.end))}
    now = utcnow()
    today = period.day_of(now)
    stale = []
    for day in period.days():
        if day > today:
            continue  # the future has nothing to count
        marker = markers.get(day)
        settled = Period(day, day, period.zone).until + settle
        young = max_age is not None and marker is not None and marker[1] > now - max_age
        if marker is None or (marker[0] < newest and marker[1] < settled and not young):
            stale.append(day)
    return stale


def refresh_stale(uow: UnitOfWork, period: Period, sla: Mapping[str, int], max_age: timedelta | None = None
                  ) -> list[date]:
    """Bring the rollups of ``period`` up to date, in the caller's transaction: the message
    rollups of ``stale_days``, the ticket rollups of ``stale_ticket_days``; returns the days either
    refreshed. The rollup job keeps recent days fresh, so a read usually finds nothing to do."""
    messages = stale_days(uow, period, sla, max_age)
    if messages:
        _refresh_message_days(uow, messages, period.zone, sla)
    tickets = stale_ticket_days(uow, period, max_age)
    if tickets:
        refresh_ticket_days(uow, tickets, period.zone)
    return sorted(set(messages) | set(tickets))


def _tickets_of(uow: UnitOfWork, conversations: Sequence[int]) -> dict[int, list[tuple[datetime, datetime | None, str]]]:
    """The tickets of these conversations: (opened, closed or None, priority)."""
    found: dict[int, list[tuple[datetime, datetime | None, str]]] = defaultdict(list)
    for chunk in _chunks(conversations):
        for conversation_id, created, resolved, priority in uow.execute(
                select(Ticket.conversation_id, Ticket.created_at, Ticket.resolved_at, Ticket.priority)
                .where(Ticket.conversation_id.in_(chunk))):
            found[conversation_id].append((as_utc(created), as_utc(resolved) if resolved else None, priority))
    return found


def _chunks(ids: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _where_tickets(statement: Any, channel: str | None, account: str | None) -> Any:
    """``statement`` over tickets, with each ticket's channel and account: its conversation's, or,
    for one made from a mention, the mention's (one query, not a read per ticket)."""
    mention = models.Mention
    made_from = select(mention.ticket_id, func.min(mention.channel).label("channel"),
                       func.min(mention.account).label("account")).where(
        mention.ticket_id.is_not(None)).group_by(mention.ticket_id).subquery()
    ticket_channel = func.coalesce(made_from.c.channel, Conversation.channel)
    ticket_account = func.coalesce(made_from.c.account, Conversation.account)
    statement = statement.add_columns(ticket_channel, ticket_account).outerjoin(
        Conversation, Conversation.id == Ticket.conversation_id).outerjoin(made_from, made_from.c.ticket_id == Ticket.id)
    if channel:
        statement = statement.where(ticket_channel == channel)
    if account:
        statement = statement.where(ticket_account == account)
    return statement


@dataclass
class TicketDay:
    """The ticket-derived service figures of one brand day, channel, account and agent (a
    ``KpiTicketDay``): the tickets opened that day, and the rating questions asked that day. The
    agent of a ticket is the one who holds it (who resolved it, once resolved); None: no one.

    **response_time_median_s**, **response_time_p90_s** = the median and the nearest-rank 90th
    percentile of (first agent reply − ticket opened), in seconds to a tenth, over the tickets
    answered so far (``response_time_tickets`` of them): ``response_times`` holds their times in
    whole milliseconds, in order.
    **resolution_rate** = ``resolved`` ÷ ``counted``: of the tickets opened, the resolved ÷ all but
    the cancelled (a hand-off the customer called off was never for staff to resolve).
    **satisfaction_rate** = ``csat_satisfied`` (answers of 4 or 5) ÷ ``csat_answered``.
    **csat_answer_rate** = ``csat_answered`` ÷ ``csat_asked`` (rating questions asked).
    **sla_breaches** (beside DESIGN.md's): the tickets opened that missed the first-response or the
    resolution due time of their SLA (``models.missed_due``)."""

    counted: int = 0
    resolved: int = 0
    breaches: int = 0
    response_times: list[int] = field(default_factory=list)
    csat_asked: int = 0
    csat_answered: int = 0
    csat_satisfied: int = 0


TicketKey = tuple[date, str, str, str | None]  # brand day, channel, account, agent (None: no one)


def ticket_days(uow: UnitOfWork, period: Period, channel: str | None = None, account: str | None = None
                ) -> dict[TicketKey, TicketDay]:
    """The ``TicketDay`` of every day, channel, account and agent of ``period``, from the tickets:
    two queries (tickets opened, ratings asked), summed per key."""
    now = utcnow()
    days: dict[TicketKey, TicketDay] = defaultdict(TicketDay)
    for (created, first_response, resolved_at, status, assignee, first_due, resolution_due, t_channel,
         t_account) in uow.execute(_where_tickets(select(
            Ticket.created_at, Ticket.first_response_at, Ticket.resolved_at, Ticket.status, Ticket.assignee,
            Ticket.first_response_due, Ticket.resolution_due).where(_in_period(Ticket.created_at, period)),
            channel, account)):
        if t_channel is None:
            continue
        created = as_utc(created)
        figures = days[(period.day_of(created), t_channel, t_account, assignee)]
        if status != models.CANCELLED:
            figures.counted += 1
            figures.resolved += status == models.RESOLVED
        figures.breaches += models.missed_due(status, first_response, resolved_at, first_due, resolution_due,
                                              now) is not None
        if first_response is not None:
            figures.response_times.append(round((as_utc(first_response) - created).total_seconds() * 1000))
    for asked_at, score, assignee, t_channel, t_account in uow.execute(_where_tickets(select(
            Ticket.csat_asked_at, Ticket.csat_score, Ticket.assignee).where(
            _in_period(Ticket.csat_asked_at, period)), channel, account)):
        if t_channel is None:
            continue
        figures = days[(period.day_of(asked_at), t_channel, t_account, assignee)]
        figures.csat_asked += 1
        figures.csat_answered += score is not None
        figures.csat_satisfied += score is not None and score >= 4
    return dict(days)


def _add_tickets(rows: _Rows, days: Mapping[TicketKey, TicketDay]) -> None:
    for (day, channel, account, agent), figures in days.items():
        keys = rows.keys(channel, account, day, agent)
        rows.add(keys, "resolution_rate_numerator", figures.resolved)
        rows.add(keys, "resolution_rate_denominator", figures.counted)
        rows.add(keys, "sla_breaches", figures.breaches)
        rows.add(keys, "csat_answer_rate_numerator", figures.csat_answered)
        rows.add(keys, "csat_answer_rate_denominator", figures.csat_asked)
        rows.add(keys, "satisfaction_rate_numerator", figures.csat_satisfied)
        rows.add(keys, "satisfaction_rate_denominator", figures.csat_answered)
        for key in keys:
            rows.response_times[key].extend(figures.response_times)


def rolled_up_tickets(uow: UnitOfWork, period: Period, channel: str | None = None, account: str | None = None
                      ) -> dict[TicketKey, TicketDay]:
    """``ticket_days`` as the rollups hold them."""
    return {(row.day, row.channel, row.account, row.agent or None): TicketDay(
        row.counted, row.resolved, row.breaches, row.response_times or [],
        row.csat_asked, row.csat_answered, row.csat_satisfied)
        for row in _rollups(uow, models.KpiTicketDay, period, channel, account)}


def refresh_ticket_days(uow: UnitOfWork, days: Sequence[date], zone: str) -> int:
    """Compute the ticket rollups of these brand days from the tickets and replace theirs
    (idempotent, as ``refresh_days``); returns the rows written."""
    table, written = models.KpiTicketDay, 0
    for day in sorted(set(days)):
        refreshed = utcnow()  # before the read: a ticket written during it makes the day stale
        figures = ticket_days(uow, Period(day, day, zone))
        uow.execute(delete(table).where(table.day == day))
        rows = [{"day": day, "channel": key[1], "account": key[2], "agent": key[3] or "", "counted": f.counted,
                 "resolved": f.resolved, "breaches": f.breaches,
                 "response_times": sorted(f.response_times),
                 "csat_asked": f.csat_asked, "csat_answered": f.csat_answered, "csat_satisfied": f.csat_satisfied,
                 "refreshed_at": refreshed} for key, f in figures.items()]
        rows.append({"day": day, "channel": MARKER, "account": MARKER, "agent": MARKER, "counted": 0, "resolved": 0,
                     "breaches": 0, "response_times": [], "csat_asked": 0, "csat_answered": 0, "csat_satisfied": 0,
                     "refreshed_at": refreshed})
        uow.execute(insert(table), rows)
        written += len(rows)
    return written


# A ticket written just before a refresh read the tickets may commit just after it, unseen: its
# write counts as news for this long after the refresh (transactions here last well under that).
COMMIT_SLACK = timedelta(minutes=1)


def stale_ticket_days(uow: UnitOfWork, period: Period, max_age: timedelta | None = None) -> list[date]:
    """The days of ``period`` whose ticket rollup is missing or may have changed, unless it is
    younger than ``max_age``: a ticket of the day (opened, or asked for its rating, that day) was
    written since the rollup (``Ticket.updated_at``), or an open ticket of the day passed a due
    time since (a breach from then on, with no write to show it)."""
    table, now = models.KpiTicketDay, utcnow()
    markers = {day: as_utc(refreshed) for day, refreshed in uow.execute(select(table.day, table.refreshed_at).where(
        table.channel == MARKER, table.day >= period.start, table.day <= period.end))}
    today = period.day_of(now)
    days = [day for day in period.days() if day <= today]
    stale = {day for day in days if day not in markers}
    watched = {day: refreshed for day, refreshed in markers.items()
               if day in days and not (max_age is not None and refreshed > now - max_age)}
    if not watched:
        return sorted(stale)
    since = min(watched.values()) - COMMIT_SLACK
    # Only ``updated_at`` in SQL, so that its index is used: few tickets change between rollups.
    for created, asked, updated in uow.execute(select(Ticket.created_at, Ticket.csat_asked_at, Ticket.updated_at)
                                               .where(Ticket.updated_at >= since)):
        for moment in (created, asked):
            day = period.day_of(moment) if moment is not None else None
            if day in watched and as_utc(updated) >= watched[day] - COMMIT_SLACK:
                stale.add(day)
    # Past a due time now (the queue's own rule, ``Ticket.breached``), and one of them came lately.
    for created, answered, first_due, resolution_due in uow.execute(select(
            Ticket.created_at, Ticket.first_response_at, Ticket.first_response_due, Ticket.resolution_due).where(
            Ticket.breached(now), _in_period(Ticket.created_at, period),
            or_(Ticket.first_response_due > since, Ticket.resolution_due > since))):
        day = period.day_of(created)
        dues = [resolution_due] + ([first_due] if answered is None else [])
        if day in watched and any(watched[day] < as_utc(due) <= now for due in dues):
            stale.add(day)
    return sorted(stale)


# ---------------------------------------------------------------------------------- fans
def fan_kpis(uow: UnitOfWork, period: Period, *, channel: str | None = None, account: str | None = None,
             by_day: bool = False) -> list[dict[str, Any]]:
    """The fan KPIs per channel and account over ``period`` (and per day with ``by_day``).

    **followers** = the account's last follower count on or before the period's (the day's) end.
    **net_growth** = that − the last count before the period (the day) began, or, for an account
    first counted within it, its first count.
    **reach** = Σ followers of the distinct authors who mentioned the brand (each author once, at
    the most followers seen in the period).
    **engagement** = Σ (reposts + comments + likes) of the mentions.
    **reposts_comments** (转评数) = Σ (reposts + comments) of the mentions.
    **conversion_rate** = leads captured from the channel in the period that were converted ÷
    leads captured from it in the period (a lead names its source channel, not an account: every
    account of the channel shows its channel's figure).
    **net_sentiment** = (positive − negative mentions) ÷ all mentions.
    Mentions and leads count on the day they were posted or captured."""
    rows = _Rows(period, by_day)
    _followers(uow, period, rows, channel, account)
    _mentions(uow, period, rows, channel, account)
    _leads(uow, period, rows, channel)
    return rows.rows(FANS)


def _followers(uow: UnitOfWork, period: Period, rows: _Rows, channel: str | None, account: str | None) -> None:
    snapshots = models.FollowerSnapshot
    where = [snapshots.day <= period.end]
    if channel:
        where.append(snapshots.channel == channel)
    if account:
        where.append(snapshots.account == account)
    series: dict[tuple[str, str], list[tuple[date, int]]] = defaultdict(list)
    for snap_channel, snap_account, day, followers in uow.execute(
            select(snapshots.channel, snapshots.account, snapshots.day, snapshots.followers).where(*where)
            .order_by(snapshots.day)):
        series[(snap_channel, snap_account)].append((day, followers))
    spans = [(None, period.start, period.end)] + ([(d, d, d) for d in period.days()] if rows.by_day else [])
    for (snap_channel, snap_account), points in series.items():
        for day, start, end in spans:
            at_end = [f for d, f in points if d <= end]
            if not at_end:
                continue
            before = [f for d, f in points if d < start]
            within = [f for d, f in points if start <= d <= end]
            base = before[-1] if before else (within[0] if within else None)
            values = {"followers": at_end[-1], "net_growth": None if base is None else at_end[-1] - base}
            key = (snap_channel, snap_account, None, day)
            rows.values[key].update(values)


def _mentions(uow: UnitOfWork, period: Period, rows: _Rows, channel: str | None, account: str | None) -> None:
    mention = models.Mention
    where = [_in_period(mention.created_at, period), mention.deleted.is_(False)]
    if channel:
        where.append(mention.channel == channel)
    if account:
        where.append(mention.account == account)
    reach: dict[Key, dict[str, int]] = defaultdict(dict)
    for m_channel, m_account, created, author, followers, reposts, comments, likes, sentiment in uow.execute(
            select(mention.channel, mention.account, mention.created_at, mention.author_id, mention.author_followers,
                   mention.reposts, mention.comments, mention.likes, mention.sentiment).where(*where)):
        keys = rows.keys(m_channel, m_account, as_utc(created))
        rows.add(keys, "engagement", (reposts or 0) + (comments or 0) + (likes or 0))
        rows.add(keys, "reposts_comments", (reposts or 0) + (comments or 0))
        rows.count(keys, "net_sentiment", False)  # the denominator: every mention
        rows.add(keys, "net_sentiment_numerator", {"pos": 1, "neg": -1}.get(sentiment or "", 0))
        if author:
            for key in keys:
                reach[key][author] = max(reach[key].get(author, 0), followers or 0)
    for key, authors in reach.items():
        rows.counts[key]["reach"] = sum(authors.values())


def _leads(uow: UnitOfWork, period: Period, rows: _Rows, channel: str | None) -> None:
    accounts: dict[str, set[str]] = defaultdict(set)
    for key in list(rows.counts) + list(rows.values):
        accounts[key[0]].add(key[1])
    lead = models.Lead
    where = [_in_period(lead.created_at, period)]
    if channel:
        where.append(lead.source_channel == channel)
    for source, created, status in uow.execute(select(lead.source_channel, lead.created_at, lead.status).where(*where)):
        for acc in accounts.get(source) or {""}:
            rows.count(rows.keys(source, acc, as_utc(created)), "conversion_rate", status == "converted")



def merged(*row_sets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Service and fan rows of the same channel, account, agent and day as one row each."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rows in row_sets:
        for row in rows:
            key = (row["channel"], row["account"], row["agent"] or "", row["day"] or "")
            out.setdefault(key, {}).update(row)
    return [out[key] for key in sorted(out)]


def csat_distribution(uow: UnitOfWork, period: Period, channel: str | None = None) -> dict[int, int]:
    """How many CSAT answers gave each score 1-5, over the ratings asked in ``period``."""
    counts = {score: 0 for score in range(1, 6)}
    statement = select(Ticket.csat_score).where(_in_period(Ticket.csat_asked_at, period),
                                                Ticket.csat_score.is_not(None))
    if channel:
        statement = _where_tickets(statement, channel, None)
    for row in uow.execute(statement):
        if row[0] in counts:
            counts[row[0]] += 1
    return counts


def lead_sources(uow: UnitOfWork, period: Period, channel: str | None = None) -> list[dict[str, Any]]:
    """Leads captured in ``period`` by source (channel, and the campaign, else the keyword, they
    came by), with how many were converted: the conversion rate by source."""
    lead = models.Lead
    found: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    where = [_in_period(lead.created_at, period)] + ([lead.source_channel == channel] if channel else [])
    for source, campaign, keyword, status in uow.execute(
            select(lead.source_channel, lead.campaign, lead.keyword, lead.status).where(*where)):
        counts = found[(source, campaign or keyword or "")]
        counts[0] += 1
        counts[1] += status == "converted"
    return [{"source_channel": source, "term": term, "captured": captured, "converted": converted,
             "conversion_rate": round(converted / captured, 4)}
            for (source, term), (captured, converted) in sorted(found.items())]
