"""The KPI dashboards (issue 15): service KPIs for supervisors and admins, fan KPIs for marketers
(and supervisors, admins), over a period of brand days with a channel filter.

Every chart and table is built once, as a ``Chart``: a table of DESIGN.md's numbers (columns
named as in the JSON API) that the CSV export writes as it is, and from which the page's Chart.js
figure is drawn. So a chart and its CSV can never disagree. The figures travel in a
``<script type="application/json">`` block (Jinja's ``tojson``: no text can close the element),
drawn by static/console/dashboards.js: the console's CSP allows no inline script.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable, Iterable, Sequence

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l

from crm_store import kpis, models
from crm_store.models import utcnow
from web import queries
from web.console import label, local_time, staff_required
from web.context import runtime_of

DASHBOARD_MAX_AGE = timedelta(minutes=5)  # the rollup job's interval (workers/schedule.py)
bp = Blueprint("console_dashboards", __name__, url_prefix="/console/dashboards")
SEES_SERVICE = models.REASSIGN_ROLES  # supervisors and admins
SEES_FANS = models.LEAD_ROLES  # marketers, supervisors and admins
QUICK_DAYS = (7, 30, 90)
LONGEST_DAYS = 366  # as the API: a period of at most a year
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)
SERVICE_CHANNELS = ("wechat", "webchat", "weibo", "twitter")  # tickets also come from mentions
FAN_CHANNELS = ("weibo", "twitter", "wechat")
BREACHES_SHOWN = queries.PAGE_SIZE

# The KPIs' names as the console shows them (DESIGN.md's names are the CSV's columns).
NAMES: dict[str, Any] = {
    "response_rate": _l("Response rate"), "response_time_median_s": _l("Response time, median"),
    "response_time_p90_s": _l("Response time, p90"), "resolution_rate": _l("Resolution rate"),
    "satisfaction_rate": _l("Satisfaction rate"), "self_service_rate": _l("Self-service rate"),
    "csat_answer_rate": _l("Rating answer rate"), "followers": _l("Followers"), "net_growth": _l("Net growth"),
    "reach": _l("Reach"), "engagement": _l("Engagement"), "reposts_comments": _l("Reposts + comments"),
    "conversion_rate": _l("Conversion rate"), "net_sentiment": _l("Net sentiment"), "answers": _l("Answers"),
}


@dataclass
class Chart:
    """One chart (or table) of a dashboard: ``columns`` and ``rows`` are what its CSV holds.

    The figure draws the ``values`` columns along ``x``; rows that differ in the ``group`` columns
    (a channel and account) are separate lines or bars. ``labels`` fixes the x axis (every day of
    the period, also those without data); otherwise it is the rows' ``x`` values in order."""

    name: str
    title: Any
    kind: str  # "line", "bar", or "table" (no figure)
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    x: str = "day"
    values: tuple[str, ...] = ()
    group: tuple[str, ...] = ()
    labels: list[str] | None = None
    percent: bool = False
    from_zero: bool = True  # a level such as followers reads better on its own scale
    duration: bool = False  # values in seconds, shown as s, min or h
    horizontal: bool = False  # bars along y: room for many long labels

    def figure(self) -> dict[str, Any]:
        """What Chart.js draws: labels along x and one dataset per group and value column."""
        at = {name: n for n, name in enumerate(self.columns)}
        labels = self.labels if self.labels is not None else list(dict.fromkeys(str(r[at[self.x]]) for r in self.rows))
        series: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(dict)
        for row in self.rows:
            series[tuple(row[at[g]] for g in self.group)][str(row[at[self.x]])] = row
        datasets = []
        for group, by_x in series.items():
            for value in self.values:
                # The group is a channel (shown by its name) and an account (as it is).
                parts = [label(str(group[0])), *(str(part) for part in group[1:])] if group else []
                name = " · ".join([*parts, str(NAMES.get(value, value))])
                datasets.append({"label": name, "data": [by_x[x][at[value]] if x in by_x else None for x in labels]})
        figure = {"kind": self.kind, "labels": labels, "datasets": datasets, "percent": self.percent,
                  "from_zero": self.from_zero, "horizontal": self.horizontal}
        if self.duration:  # how dashboards.js writes a duration, in the reader's language
            figure["units"] = {"s": _("%(n)s s"), "min": _("%(n)s min"), "h": _("%(n)s h")}
        return figure


@dataclass
class Dashboard:
    """A dashboard's period, channel and charts (in page order), and its headline figures."""

    period: kpis.Period
    channel: str | None
    charts: dict[str, Chart] = field(default_factory=dict)
    headline: dict[str, Any] = field(default_factory=dict)

    def add(self, chart: Chart) -> None:
        self.charts[chart.name] = chart

    def figures(self) -> dict[str, dict[str, Any]]:
        return {name: chart.figure() for name, chart in self.charts.items() if chart.kind != "table"}


# ---------------------------------------------------------------------------------- the period
def _today(zone: str) -> date:
    return kpis.brand_day(utcnow(), zone)


def _default(zone: str) -> kpis.Period:
    today = _today(zone)
    return kpis.Period(today - timedelta(days=6), today, zone)


def requested_period(zone: str) -> kpis.Period | None:
    """The period the query string asks for: ``from`` and ``to`` (brand days, both included), or
    ``days`` (the last 7, 30 or 90 up to today); none of them: the last 7 days. None when what it
    asks for is not a period of at most a year."""
    args = request.args
    if args.get("days"):
        if args["days"] not in {str(n) for n in QUICK_DAYS}:
            return None
        today = _today(zone)
        return kpis.Period(today - timedelta(days=int(args["days"]) - 1), today, zone)
    if not args.get("from") and not args.get("to"):
        return _default(zone)
    try:
        end = date.fromisoformat(args["to"]) if args.get("to") else _today(zone)
        start = date.fromisoformat(args["from"]) if args.get("from") else end - timedelta(days=6)
        period = kpis.Period(start, end, zone)
    except (ValueError, OverflowError):  # not a date, or the period ends before it starts
        return None
    # Years far away are not a brand's history (and year 1 or 9999 overflow its UTC bounds).
    if not (EARLIEST <= period.start and period.end <= LATEST) or (period.end - period.start).days >= LONGEST_DAYS:
        return None
    return period


def _channel(allowed: Sequence[str]) -> str | None:
    channel = request.args.get("channel") or None
    return channel if channel in allowed else None


def _page(which: str, build: Callable[[kpis.Period, str | None], Dashboard], channels: Sequence[str]) -> Any:
    """A dashboard page; a period that is not one goes back to the default, saying so."""
    zone = runtime_of(current_app).settings.timezone
    channel = _channel(channels)
    period = requested_period(zone)
    if period is None:
        flash(_("That is not a period of at most %(days)d days; showing the last 7 days.", days=LONGEST_DAYS), "error")
        return redirect(url_for(f".{which}", **({"channel": channel} if channel else {})))
    board = build(period, channel)
    query = {"from": period.start.isoformat(), "to": period.end.isoformat(), **({"channel": channel} if channel else {})}
    return render_template(f"console/dashboards_{which}.html", board=board, figures=board.figures(), query=query,
                           channels=channels, quick_days=QUICK_DAYS, names=NAMES,
                           quick=request.args.get("days") or (None if {"from", "to"} & set(request.args) else "7"),
                           csv_url=lambda chart: url_for(f".{which}_csv", chart=chart, **query))


def _csv(which: str, build: Callable[[kpis.Period, str | None], Dashboard], channels: Sequence[str]) -> Response:
    """One chart's numbers as a CSV file (UTF-8 with a BOM, so that Excel reads Chinese)."""
    zone = runtime_of(current_app).settings.timezone
    period = requested_period(zone)
    if period is None:
        abort(400, _("That is not a period of at most %(days)d days.", days=LONGEST_DAYS))
    chart = build(period, _channel(channels)).charts.get(request.args.get("chart", ""))
    if chart is None:
        abort(404)
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(chart.columns)
    writer.writerows([_cell(value) for value in row] for row in chart.rows)
    filename = f"{which}-{chart.name}-{period.start}-{period.end}.csv"
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is kept as text."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# ---------------------------------------------------------------------------------- service
def pooled(rows: Iterable[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Rates over several channels and accounts: their numerators and denominators added up
    (a rate of rates would weigh a quiet account as much as a busy one)."""
    sums = {f"{name}_{part}": 0 for name in names for part in ("numerator", "denominator")}
    for row in rows:
        for key in sums:
            sums[key] += row.get(key) or 0
    out: dict[str, Any] = {}
    for name in names:
        n, d = sums[f"{name}_numerator"], sums[f"{name}_denominator"]
        out.update({name: round(n / d, 4) if d else None, f"{name}_numerator": n, f"{name}_denominator": d})
    return out


TREND_RATES = ("response_rate", "resolution_rate", "satisfaction_rate", "self_service_rate")
AGENT_COLUMNS = ("agent", "channel", "account", "response_time_median_s", "response_time_p90_s",
                 "response_time_tickets", "resolution_rate", "resolution_rate_numerator",
                 "resolution_rate_denominator", "satisfaction_rate", "satisfaction_rate_numerator",
                 "satisfaction_rate_denominator", "csat_answer_rate", "csat_answer_rate_numerator",
                 "csat_answer_rate_denominator")
BREACH_COLUMNS = ("reference", "priority", "status", "assignee", "category", "opened", "first_response_due",
                  "resolution_due")


def service_dashboard(period: kpis.Period, channel: str | None) -> Dashboard:
    """The service KPIs of ``period`` (and ``channel``): daily trends, per agent, the open
    breaches, the CSAT distribution, and the period's headline figures."""
    rt = runtime_of(current_app)
    with rt.uow() as uow:
        # A rollup younger than the rollup job's interval is taken as it is: under live traffic
        # every new message would otherwise recompute today on each page view (the API is exact).
        rows = kpis.service_kpis(uow, period, kpis.first_response_minutes(rt.content.rules), channel=channel,
                                 by_day=True, max_age=DASHBOARD_MAX_AGE)
        uow.commit()  # the day rollups it brought up to date
        distribution = kpis.csat_distribution(uow, period, channel)
        breaches = queries.ticket_queue(uow, queries.QueueFilter(statuses=queries.OPEN_STATES, breached=True,
                                                                 channel=channel), 1, BREACHES_SHOWN)
    days = [day.isoformat() for day in period.days()]
    teams = [r for r in rows if r["agent"] is None]
    board = Dashboard(period, channel)
    trend = [(day, *_flatten(pooled((r for r in teams if r["day"] == day), TREND_RATES), TREND_RATES))
             for day in days]
    board.add(Chart("rates", _l("Rates per day"), "line", ("day", *_with_parts(TREND_RATES)), trend,
                    values=TREND_RATES, labels=days, percent=True))
    board.add(Chart("response_time", _l("Response time per day"), "line",
                    ("day", "channel", "account", "response_time_median_s", "response_time_p90_s",
                     "response_time_tickets"),
                    [(r["day"], r["channel"], r["account"], r["response_time_median_s"], r["response_time_p90_s"],
                      r["response_time_tickets"]) for r in teams if r["day"] and r.get("response_time_tickets")],
                    values=("response_time_median_s", "response_time_p90_s"), group=("channel", "account"),
                    labels=days, duration=True))
    board.add(Chart("csat", _l("Rating distribution"), "bar", ("score", "answers"),
                    [(score, n) for score, n in sorted(distribution.items())], x="score", values=("answers",)))
    board.add(Chart("agents", _l("Per agent"), "table", AGENT_COLUMNS,
                    [tuple(r.get(c) for c in AGENT_COLUMNS) for r in rows if r["agent"] and not r["day"]]))
    board.add(Chart("breaches", _l("Open tickets past their SLA"), "table", BREACH_COLUMNS,
                    [(t.reference, t.priority, t.status, t.assignee, t.category,
                      local_time(t.created_at, "yyyy-MM-dd HH:mm"), local_time(t.first_response_due, "yyyy-MM-dd HH:mm"),
                      local_time(t.resolution_due, "yyyy-MM-dd HH:mm")) for t in breaches[:BREACHES_SHOWN]]))
    totals = [r for r in teams if not r["day"]]
    timed = [(r["channel"], r["account"], r["response_time_median_s"], r["response_time_p90_s"],
              r["bot_latency_p50_ms"], r["bot_latency_p99_ms"]) for r in totals]
    board.headline = {
        **pooled(totals, (*TREND_RATES, "csat_answer_rate")),
        # A median or percentile of several accounts cannot be added up: one per channel and account.
        "response_times": [t for t in timed if any(value is not None for value in t[2:])],
        "breaches": min(len(breaches), BREACHES_SHOWN), "more_breaches": len(breaches) > BREACHES_SHOWN,
    }
    return board


def _with_parts(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(column for name in names for column in (name, f"{name}_numerator", f"{name}_denominator"))


def _flatten(row: dict[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row[column] for column in _with_parts(names))


# ---------------------------------------------------------------------------------- fans
FAN_HEADLINE = ("channel", "account", "followers", "net_growth", "reach", "engagement", "reposts_comments",
                "net_sentiment", "net_sentiment_numerator", "net_sentiment_denominator")
SOURCE_COLUMNS = ("source_channel", "term", "captured", "converted", "conversion_rate")


def fan_dashboard(period: kpis.Period, channel: str | None) -> Dashboard:
    """The fan KPIs of ``period`` (and ``channel``) per account and day, conversion by source,
    and the period's figures per account."""
    with runtime_of(current_app).uow() as uow:
        rows = kpis.fan_kpis(uow, period, channel=channel, by_day=True)
        sources = kpis.lead_sources(uow, period, channel)
    days = [day.isoformat() for day in period.days()]
    # A channel's leads also come as a row without an account (no followers, no mentions): they
    # are counted by source below, not drawn as an account.
    accounts = [r for r in rows if r["account"]]
    daily = [r for r in accounts if r["day"]]
    board = Dashboard(period, channel)

    def per_account(name: str, title: Any, kind: str, *kpi: str, extra: tuple[str, ...] = (), **how: bool) -> None:
        columns = ("day", "channel", "account", *kpi, *extra)
        board.add(Chart(name, title, kind, columns, [tuple(r.get(c) for c in columns) for r in daily],
                        values=kpi, group=("channel", "account"), labels=days, **how))

    per_account("followers", _l("Followers per day"), "line", "followers", from_zero=False)
    per_account("net_growth", _l("Net growth per day"), "bar", "net_growth")
    per_account("reach", _l("Reach per day"), "line", "reach")
    per_account("engagement", _l("Engagement per day"), "bar", "engagement")
    per_account("reposts_comments", _l("Reposts + comments per day"), "bar", "reposts_comments")
    per_account("net_sentiment", _l("Net sentiment per day"), "line", "net_sentiment", percent=True,
                extra=("net_sentiment_numerator", "net_sentiment_denominator"))
    board.add(Chart("conversion", _l("Conversion by source"), "bar", ("source", *SOURCE_COLUMNS),
                    [(" · ".join(filter(None, (label(s["source_channel"]), s["term"]))),
                      *(s[c] for c in SOURCE_COLUMNS)) for s in sources],
                    x="source", values=("conversion_rate",), percent=True, horizontal=True))
    captured, converted = sum(s["captured"] for s in sources), sum(s["converted"] for s in sources)
    board.headline = {
        "accounts": [tuple(r.get(c) for c in FAN_HEADLINE) for r in accounts if not r["day"]],
        "conversion_rate": round(converted / captured, 4) if captured else None,
        "captured": captured, "converted": converted,
    }
    return board


# ---------------------------------------------------------------------------------- routes
@bp.route("/service")
@staff_required(*SEES_SERVICE)
def service() -> Any:
    """The service dashboard (``from``, ``to`` or ``days``, ``channel``)."""
    return _page("service", service_dashboard, SERVICE_CHANNELS)


@bp.route("/service.csv")
@staff_required(*SEES_SERVICE)
def service_csv() -> Response:
    """One service chart's numbers (``chart``: rates, response_time, csat, agents, breaches)."""
    return _csv("service", service_dashboard, SERVICE_CHANNELS)


@bp.route("/fans")
@staff_required(*SEES_FANS)
def fans() -> Any:
    """The fan dashboard (``from``, ``to`` or ``days``, ``channel``)."""
    return _page("fans", fan_dashboard, FAN_CHANNELS)


@bp.route("/fans.csv")
@staff_required(*SEES_FANS)
def fans_csv() -> Response:
    """One fan chart's numbers (``chart``: followers, net_growth, reach, engagement,
    reposts_comments, net_sentiment, conversion)."""
    return _csv("fans", fan_dashboard, FAN_CHANNELS)
