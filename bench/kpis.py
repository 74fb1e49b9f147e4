"""KPI benchmark (issue 15): the day rollups, the dashboards' queries and the analysis lag, over a
store the size of a busy brand's.

    .venv/bin/python -m bench.kpis [--store sqlite|postgres|both] [--tickets 100000]
                                   [--messages 1000000] [--customers N] [--requests 30]
                                   [--warmup 3] [--rollup-days 5] [--rate 200]
                                   [--lag-seconds 45] [--tick 2] [--seed 1] [--no-profile] [--json]

Goals: a dashboard query under 200 ms, an incremental rollup of one day under 5 s, and an
analysis lag under 5 s at 200 messages/s, with 1,000,000 messages and 100,000 tickets in the
store. Nothing is asserted; the figures are printed (and recorded in ``bench/RESULTS.md``).

What runs, for each store (SQLite: a file in a temporary folder; PostgreSQL: a private server
from ``tests/pg_cluster.py``, over its unix socket):

1. ``bench.console.fill``: the real migrations, then a year of customers, conversations, messages
   (numbered in time order, each inbound answered by the bot), tickets (first responses, CSAT
   questions and answers), leads... Then what the KPIs read that the console's fill has no use
   for (``extras``): the measured latency on the bot's passive replies of the last 40 days
   (``attributes.latency_ms`` = reply written - message arrived, 40-900 ms as the fill made
   them); a daily follower count per account over the year (WeChat, Weibo, Twitter); Weibo and
   Twitter mentions over the year (labeled texts, authors with heavy-tailed followers, reposts,
   comments, likes, sentiment). PostgreSQL then gets ``VACUUM ANALYZE`` again.
2. **Rollups.** The first full rollup of the 30 days a dashboard shows
   (``crm_store.kpis.refresh_days`` of the 30 days in one transaction), then the incremental
   rollup of one day (``refresh_days(uow, [day])`` and its commit, what the rollup job does for a
   stale day) for the ``--rollup-days`` busiest days of those 30, and for today.
3. **Dashboard queries**, once the rollups are fresh: the store functions as the dashboards call
   them (each in its own unit of work: ``service_kpis`` over 7 and 30 days by day,
   ``fan_kpis`` by day, ``csat_distribution``, ``lead_sources``), the API
   (``/api/v1/kpis/service`` and ``/fans`` with ``by=day``, a supervisor's bearer token from
   ``crm_store.staff.create_token``) and the console's dashboard pages (signed in as a
   supervisor through the real login form), through Flask's test client in this process. They
   take turns, one call each per round, with ``GET /healthz`` in the same rounds as the
   baseline. One more row: ``service_kpis`` over 7 days while messages arrive (one new inbound
   message stored before each call, untimed), so the read first brings today's and yesterday's
   rollups up to date, as it does under live traffic. A query over the goal is then profiled
   (cProfile of one call, and its SQL statements timed).
4. **Analysis lag.** A second process runs the real job, ``workers.analysis.analyze_messages``
   (the store is its queue), every ``--tick`` seconds as the scheduler does, with the NLP models
   loaded first as ``crmbot worker`` does; it first works off what the fill left waiting (the
   inbound texts of the last 20,000 message ids). Then this process writes inbound WeChat text
   messages at ``--rate`` per second for ``--lag-seconds`` (each in its own transaction with the
   bot's passive reply, as the webhook writes them; texts from ``nlp/data/labeled.jsonl``, each
   made unique), and waits (at most 120 s) for the analysis to catch up. Lag = ``analyzed_at -
   created_at`` of each message written (``message_analyses.lag_ms``): p50/p95/p99/max, and the
   backlog when the writing stopped.

Prints, per store: the rollup times, a table of the queries (p50/p95/max ms, SQL statements per
call), the lag figures, and the machine's load average around each step.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from sqlalchemy import event, func, insert, select, text

from bench.console import (ACCOUNT, AGENT_PASSWORD, BOT_REPLIES, SPAN, SUPERVISORS, WEIBO_ACCOUNT, Loader, _at,
                           _fill, _fill_engine, _load_average, _sign_in, _size_mb, fill)
from bench.webhook import EmbeddedRedis, _percentile, _postgres_cluster_class
from crm_store import models

GOAL_QUERY_MS = 200.0
GOAL_ROLLUP_S = 5.0
GOAL_LAG_S = 5.0
ZONE = "Asia/Shanghai"
TWITTER_ACCOUNT = "1490000000000000001"
LATENCY_DAYS = 40
OLD_DAYS = 20  # inbound texts older than this count as analysed already (``settle_old``)  # passive replies given their measured latency: the days the bench reads
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# What the KPIs read beyond the console's fill
# ---------------------------------------------------------------------------------------------

def extras(url: str, messages: int, seed: int, say: Callable[[str], None]) -> dict[str, int]:
    """Bot latencies on recent passive replies; daily follower counts; Weibo and Twitter mentions."""
    from nlp.evaluate import load_labeled

    rng = random.Random(seed + 15)
    engine = _fill_engine(url)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    begin = now - SPAN
    since = now - dt.timedelta(days=LATENCY_DAYS)
    counts: dict[str, int] = {}
    # The webhook records its time to answer on the passive reply: here the fill's reply gap.
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            done = connection.execute(text(
                "UPDATE messages AS m SET attributes = json_build_object('latency_ms', "
                "round(extract(epoch FROM (m.created_at - i.created_at)) * 1000)::int) FROM messages AS i "
                "WHERE i.id = m.reply_to_id AND m.direction = 'out' AND m.author = 'bot' "
                "AND m.delivery = 'passive' AND m.created_at >= :since"), {"since": since})
        else:
            done = connection.execute(text(
                "UPDATE messages SET attributes = json_object('latency_ms', CAST(round((julianday(created_at) - "
                "(SELECT julianday(i.created_at) FROM messages AS i WHERE i.id = messages.reply_to_id)) "
                "* 86400000) AS INTEGER)) WHERE direction = 'out' AND author = 'bot' AND delivery = 'passive' "
                "AND reply_to_id IS NOT NULL AND created_at >= :since"), {"since": since.replace(tzinfo=None)})
        counts["passive replies with latency_ms"] = done.rowcount
    loader = Loader(engine)
    # A follower count per account per brand day over the year (the last reading of the day).
    zone = ZoneInfo(ZONE)
    first_day, today = begin.astimezone(zone).date(), now.astimezone(zone).date()
    snapshots = []
    for channel, account, start, growth in (("wechat", ACCOUNT, 180_000, 120), ("weibo", WEIBO_ACCOUNT, 520_000, 300),
                                            ("twitter", TWITTER_ACCOUNT, 42_000, 25)):
        followers = start
        for n in range((today - first_day).days + 1):
            followers = max(0, followers + int(rng.gauss(growth, growth * 1.5)))
            day = first_day + dt.timedelta(days=n)
            snapshots.append(dict(id=len(snapshots) + 1, channel=channel, account=account, day=day,
                                  followers=followers, taken_at=min(now, dt.datetime.combine(
                                      day, dt.time(23, 50), zone).astimezone(dt.timezone.utc))))
    loader.load(models.FollowerSnapshot, snapshots)
    # Mentions: a twentieth of the messages, 3/4 on Weibo; a new author every third mention.
    labeled = [r for r in load_labeled() if r["channel"] in ("weibo", "twitter")]
    by_channel = {c: [r for r in labeled if r["channel"] == c] for c in ("weibo", "twitter")}
    n_mentions = max(50, messages // 20)
    times = sorted(_at(begin, now, rng) for _ in range(n_mentions))
    authors: list[tuple[str, int, bool]] = []
    rows = []
    for i, created in enumerate(times):
        channel = "weibo" if rng.random() < 0.75 else "twitter"
        if i % 3 == 0 or not authors:
            authors.append((str(7_000_000_000 + i), int(min(rng.paretovariate(1.1) * 80, 5_000_000)),
                            rng.random() < 0.03))
        author, followers, verified = rng.choice(authors[-50:]) if rng.random() < 0.3 else authors[-1]
        row = rng.choice(by_channel[channel])
        scale = max(1.0, followers / 2_000)
        rows.append(dict(id=i + 1, channel=channel, account=WEIBO_ACCOUNT if channel == "weibo" else TWITTER_ACCOUNT,
                         external_id=str(4_900_000_000_000_000 + i), kind=rng.choice(("post", "post", "comment")),
                         text=f"{row['text']} #{i}", author_id=author, author_screen_name=f"fan{author[-6:]}",
                         author_followers=followers, author_verified=verified,
                         reposts=int(rng.expovariate(1 / (2 * scale))), comments=int(rng.expovariate(1 / (3 * scale))),
                         likes=int(rng.expovariate(1 / (10 * scale))), created_at=created,
                         fetched_at=created + dt.timedelta(minutes=rng.uniform(1, 15)), lang=row["lang"],
                         sentiment=row["sentiment"], sentiment_score={"pos": 0.85, "neu": 0.5, "neg": 0.12}[row["sentiment"]],
                         intent=row["intent"], intent_confidence=0.8, keywords=[], watch_terms=[], customer_id=None,
                         reply_ref=None, in_reply_to=None, url=None, deleted=False, truncated=False, raw="",
                         lead_id=None, ticket_id=None))
    loader.load(models.Mention, rows)
    loader.finish()  # sequences; VACUUM ANALYZE on PostgreSQL, as after the console's fill
    engine.dispose()
    counts.update({"follower snapshots": len(snapshots), "mentions": len(rows)})
    return counts


# ---------------------------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------------------------

class SqlTimer:
    """The SQL statements of the engine and the time each took (cursor execution)."""

    def __init__(self, engine: Any) -> None:
        self.count = 0
        self.recording: list[tuple[float, str]] | None = None
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.count += 1
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.recording is not None:
            self.recording.append((time.perf_counter() - conn.info.pop("bench_started", time.perf_counter()),
                                   " ".join(statement.split())))


@dataclass
class Query:
    name: str
    group: str  # baseline | store | api | console | live
    call: Callable[[], Any]
    before: Callable[[], Any] | None = None  # untimed, before each call
    times: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"n": len(ordered), "p50_ms": _percentile(ordered, 0.5) * 1000, "p95_ms": _percentile(ordered, 0.95) * 1000,
            "max_ms": (ordered[-1] if ordered else 0) * 1000}


def profile(name: str, call: Callable[[], Any], sql: SqlTimer, say: Callable[[str], None]) -> dict[str, Any]:
    """cProfile of one call, and its SQL statements by time."""
    sql.recording = []
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    try:
        call()
    finally:
        profiler.disable()
        elapsed = time.perf_counter() - started
        recorded, sql.recording = sql.recording, None
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"crm_store|web/|sqlalchemy/orm/(loading|session)|"
                                               r"sqlalchemy/engine/(base|cursor)|psycopg|sqlite3", 18)
    by_text: dict[str, list[float]] = defaultdict(list)
    for took, statement in recorded:
        by_text[statement[:160]].append(took)
    top = sorted(by_text.items(), key=lambda kv: -sum(kv[1]))[:6]
    say(f"\n  profile of one call of {name}: {elapsed * 1000:.0f} ms under the profiler, "
        f"{len(recorded)} statements, {sum(t for t, _ in recorded) * 1000:.0f} ms in cursor execution")
    for statement, took in top:
        say(f"    SQL {sum(took) * 1000:7.1f} ms in {len(took):4} x  {statement}")
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    for line in lines[start:start + 19]:
        say(f"    {line[:170]}")
    return {"query": name, "ms": round(elapsed * 1000, 1), "statements": len(recorded),
            "sql_ms": round(sum(t for t, _ in recorded) * 1000, 1),
            "top_sql": [{"ms": round(sum(t) * 1000, 1), "count": len(t), "sql": s} for s, t in top],
            "profile": "\n".join(lines[start:start + 19])}


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------

def _settings(url: str, work: Path, redis_url: str) -> Any:
    from config import load_settings

    return load_settings({"CRMBOT_VAR_DIR": str(work / "var"), "CRMBOT_DATABASE_URL": url,
                          "CRMBOT_REDIS_URL": redis_url, "CRMBOT_SECRET_KEY": "bench-kpis-secret-key-0123456789",
                          "CRMBOT_LOG_LEVEL": "WARNING", "CRMBOT_TIMEZONE": ZONE})


def busiest_days(rt: Any, period: Any) -> Counter[dt.date]:
    """Messages per brand day of ``period`` (one scan; the bench's own look, not the product's)."""
    zone = ZoneInfo(period.zone)
    per_day: Counter[dt.date] = Counter()
    with rt.uow() as uow:
        for (created,) in uow.execute(select(models.Message.created_at).where(
                models.Message.created_at >= period.since, models.Message.created_at < period.until)):
            per_day[models.as_utc(created).astimezone(zone).date()] += 1
    return per_day


def measure_rollups(rt: Any, sla: dict[str, int], today: dt.date, days: int, say: Callable[[str], None]
                    ) -> dict[str, Any]:
    from crm_store import kpis

    month = kpis.Period(today - dt.timedelta(days=29), today, ZONE)
    per_day = busiest_days(rt, month)
    load_before = _load_average()
    with rt.uow() as uow:
        started = time.perf_counter()
        written = kpis.refresh_days(uow, month.days(), ZONE, sla)
        uow.commit()
        full = time.perf_counter() - started
    say(f"  first full rollup of 30 days: {full:.2f} s ({written} rows; {sum(per_day.values()):,} messages "
        f"in those days)")
    targets = [day for day, _ in per_day.most_common(days)]
    if today not in targets:
        targets.append(today)
    singles = []
    for day in targets:
        with rt.uow() as uow:
            started = time.perf_counter()
            kpis.refresh_days(uow, [day], ZONE, sla)
            uow.commit()
            singles.append({"day": day.isoformat(), "messages": per_day.get(day, 0),
                            "seconds": round(time.perf_counter() - started, 3)})
        say(f"  incremental rollup of {day} ({per_day.get(day, 0):,} messages): {singles[-1]['seconds']:.2f} s")
    times = sorted(s["seconds"] for s in singles)
    return {"full_30_days_s": round(full, 2), "rows": written, "messages_30_days": sum(per_day.values()),
            "days": singles, "p50_s": _percentile(times, 0.5), "max_s": times[-1],
            "load_average": [load_before, _load_average()]}


def measure_queries(rt: Any, app: Any, today: dt.date, sla: dict[str, int], conversations: list[tuple[int, int]],
                    requests: int, warmup: int, profile_slow: bool, say: Callable[[str], None]
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from crm_store import kpis, staff

    week = kpis.Period(today - dt.timedelta(days=6), today, ZONE)
    month = kpis.Period(today - dt.timedelta(days=29), today, ZONE)
    supervisor = SUPERVISORS[0]
    with rt.uow() as uow:
        token = staff.create_token(supervisor, uow)
        uow.commit()
        stale = sorted(set(kpis.stale_days(uow, month, sla)) | set(kpis.stale_ticket_days(uow, month)))
    if stale:
        say(f"  note: stale days before the queries: {stale}")
    api, console = app.test_client(), app.test_client()
    _sign_in(console, supervisor, AGENT_PASSWORD)
    bearer = {"Authorization": f"Bearer {token}"}

    def store(fn: Callable[..., Any], *args: Any, commit: bool = False, **kwargs: Any) -> Callable[[], Any]:
        def call() -> Any:
            with rt.uow() as uow:
                found = fn(uow, *args, **kwargs)
                if commit:
                    uow.commit()
            return found
        return call

    def get(client: Any, path: str, headers: dict[str, str] | None = None) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(path, headers=headers or {})
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code} {path}")
            return response
        return call

    writer = Writer(rt, conversations, random.Random(7))
    w, m = f"from={week.start}&to={week.end}", f"from={month.start}&to={month.end}"
    queries = [
        Query("baseline: GET /healthz", "baseline", get(api, "/healthz")),
        Query("service_kpis 7 days, by day", "store", store(kpis.service_kpis, week, sla, by_day=True, commit=True)),
        Query("service_kpis 30 days, by day", "store", store(kpis.service_kpis, month, sla, by_day=True, commit=True)),
        Query("fan_kpis 30 days, by day", "store", store(kpis.fan_kpis, month, by_day=True)),
        Query("csat_distribution 30 days", "store", store(kpis.csat_distribution, month)),
        Query("lead_sources 30 days", "store", store(kpis.lead_sources, month)),
        Query("api: /kpis/service 7 days by=day", "api", get(api, f"/api/v1/kpis/service?{w}&by=day", bearer)),
        Query("api: /kpis/service 30 days by=day", "api", get(api, f"/api/v1/kpis/service?{m}&by=day", bearer)),
        Query("api: /kpis/fans 30 days by=day", "api", get(api, f"/api/v1/kpis/fans?{m}&by=day", bearer)),
        Query("console: service dashboard, 7 days", "console", get(console, "/console/dashboards/service?days=7")),
        Query("console: service dashboard, 30 days", "console", get(console, "/console/dashboards/service?days=30")),
        Query("console: fan dashboard, 30 days", "console", get(console, "/console/dashboards/fans?days=30")),
        Query("live: service_kpis 7 days, 1 new msg", "live", store(kpis.service_kpis, week, sla, by_day=True,
                                                                   commit=True), before=writer.one),
    ]
    sql = SqlTimer(rt.engine)
    say(f"  {warmup} warm-up and {requests} measured rounds of {len(queries)} queries")
    load_before = _load_average()
    for round_ in range(warmup + requests):
        for query in queries:
            if query.before is not None:
                query.before()
            before = sql.count
            started = time.perf_counter()
            try:
                query.call()
            except Exception as exc:  # noqa: BLE001 - counted and shown
                query.errors[f"{exc.__class__.__name__}: {exc}"[:160]] += 1
            elapsed = time.perf_counter() - started
            if round_ >= warmup:
                query.times.append(elapsed)
                query.statements.append(sql.count - before)
    load_after = _load_average()
    results = []
    for query in queries:
        results.append({"query": query.name, "group": query.group, **_stats(query.times),
                        "statements": round(sum(query.statements) / max(1, len(query.statements)), 1),
                        "errors": dict(query.errors.most_common(3)), "error_count": sum(query.errors.values())})
    results.append({"load_average": [load_before, load_after]})
    profiles = []
    if profile_slow:
        for query, result in zip(queries, results):
            if query.group != "baseline" and result["p95_ms"] >= GOAL_QUERY_MS:
                if query.before is not None:
                    query.before()
                profiles.append(profile(query.name, query.call, sql, say))
    event.remove(rt.engine, "before_cursor_execute", sql._before)
    event.remove(rt.engine, "after_cursor_execute", sql._after)
    return results, profiles


class Writer:
    """Inbound WeChat text messages as the webhook stores them: the message and the bot's passive
    reply (with its latency) in one transaction."""

    def __init__(self, rt: Any, conversations: list[tuple[int, int]], rng: random.Random) -> None:
        from nlp.evaluate import load_labeled

        self.rt, self.conversations, self.rng = rt, conversations, rng
        self.texts = [r["text"] for r in load_labeled() if r["channel"] == "wechat" and r["lang"] == "zh"]
        self.serial = 0
        self.stamp = f"{time.time_ns() % 10**12:012d}"
        self.ids: list[int] = []
        self.table = models.Message.__table__

    def one(self) -> int:
        from channels.wechat_push import text_xml

        rng = self.rng
        self.serial += 1
        conversation, customer = rng.choice(self.conversations)
        said = f"{rng.choice(self.texts)}（{self.serial}）"  # unique: no cache helps
        msg_id = f"{self.stamp}{self.serial:07d}"
        now = models.utcnow()
        with self.rt.engine.begin() as connection:
            message_id = connection.execute(insert(self.table).returning(self.table.c.id), dict(
                conversation_id=conversation, customer_id=customer, direction="in", kind="text", text=said,
                attributes={}, raw=text_xml(ACCOUNT, f"oBenchKpi{conversation:08d}", said, int(msg_id),
                                            int(now.timestamp())),
                external_id=msg_id, dedupe_key=f"wechat:{ACCOUNT}:msg:{msg_id}", push_key=None, reply_to_id=None,
                author="customer", delivery=None, delivery_error=None, attempts=0, sent_at=now,
                created_at=now)).scalar_one()
            latency = rng.randint(40, 900)
            connection.execute(insert(self.table), dict(
                conversation_id=conversation, customer_id=customer, direction="out", kind="text",
                text=_fill(rng.choice(BOT_REPLIES), rng), attributes={"latency_ms": latency}, raw="",
                external_id=None, dedupe_key=None, push_key=None, reply_to_id=message_id, author="bot",
                delivery=models.PASSIVE, delivery_error=None, attempts=0, sent_at=now,
                created_at=now + dt.timedelta(milliseconds=latency)))
        self.ids.append(message_id)
        return message_id


def _waiting(rt: Any, ids: list[int] | None = None) -> int:
    """Inbound texts without an analysis: of ``ids``, or what the job would find (its window)."""
    from crm_store import analyses

    with rt.uow() as uow:
        if ids is None:
            return len(analyses.waiting(uow, limit=100_000))
        done = uow.execute(select(func.count()).select_from(models.MessageAnalysis).where(
            models.MessageAnalysis.message_id >= min(ids), models.MessageAnalysis.message_id <= max(ids))).scalar()
    return len(ids) - done


def settle_old(rt: Any) -> int:
    """Mark as analysed (placeholder rows) the inbound texts of the job's window that are older
    than ``OLD_DAYS``: a store whose analysis has been running has none of them waiting. Needed
    on PostgreSQL, where the job cannot store the lag of a message older than 24.8 days
    (``message_analyses.lag_ms`` is a 32-bit integer): a tiny fill's window spans the whole year."""
    from crm_store.analyses import WINDOW

    table = models.MessageAnalysis.__table__
    with rt.uow() as uow:
        newest = uow.execute(select(func.max(models.Message.id))).scalar() or 0
        analysed = select(models.MessageAnalysis.message_id).where(
            models.MessageAnalysis.message_id == models.Message.id).exists()
        old = uow.execute(select(models.Message.id, models.Message.created_at).where(
            models.Message.id > newest - WINDOW, models.Message.direction == "in", models.Message.kind == "text",
            models.Message.text != "", models.Message.created_at < models.utcnow() - dt.timedelta(days=OLD_DAYS),
            ~analysed)).all()
        if old:
            uow.execute(insert(table), [dict(message_id=id_, lang="zh", sentiment="neu", sentiment_score=0.5,
                                             intent="chitchat", intent_confidence=0.5, keywords=[], watch_terms=[],
                                             escalation=None, analyzed_at=created, lag_ms=0) for id_, created in old])
        uow.commit()
    return len(old)


def measure_lag(rt: Any, url: str, redis_url: str, work: Path, conversations: list[tuple[int, int]], rate: float,
                seconds: float, tick: float, seed: int, say: Callable[[str], None]) -> dict[str, Any]:
    stop = work / "analyzer.stop"
    stop.unlink(missing_ok=True)
    spec = {"url": url, "redis": redis_url, "work": str(work), "tick": tick, "stop": str(stop),
            "deadline_s": seconds + 900}
    settled = settle_old(rt)  # before the analyzer starts
    writing_from: float | None = None
    log = open(work / "analyzer.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "bench.kpis", "--analyzer", json.dumps(spec)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    out: dict[str, Any] = {"rate_goal": rate, "seconds": seconds, "tick_s": tick, "settled_old": settled}
    try:
        # What the fill left waiting: the analysis works it off first (bounded).
        backlog = _waiting(rt)
        started = time.perf_counter()
        while time.perf_counter() - started < 600 and proc.poll() is None:
            time.sleep(1.0)
            if _waiting(rt) == 0:
                break
        out["initial_backlog"] = backlog
        out["initial_backlog_s"] = round(time.perf_counter() - started, 1)
        say(f"  the analysis worked off the fill's {backlog:,} waiting messages in {out['initial_backlog_s']} s "
            f"({settled:,} older than {OLD_DAYS} days marked analysed first)")
        if proc.poll() is not None:
            raise RuntimeError(f"the analyzer exited: {Path(log.name).read_text()[-2000:]}")
        # The writer: --rate messages a second on an absolute schedule, bounded in count and time.
        writer = Writer(rt, conversations, random.Random(seed))
        total = int(rate * seconds)
        load_before = _load_average()
        writing_from = time.time()
        t0 = time.perf_counter()
        for n in range(total):
            due = t0 + n / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            if time.perf_counter() - t0 > seconds + 30:
                break
            writer.one()
        wrote_s = time.perf_counter() - t0
        backlog_end = _waiting(rt, writer.ids)
        drained = time.perf_counter()
        while backlog_end and time.perf_counter() - drained < 120 and _waiting(rt, writer.ids):
            time.sleep(0.25)
        drain_s = time.perf_counter() - drained
        load_after = _load_average()
        ids = writer.ids
        with rt.uow() as uow:
            lags = sorted(uow.execute(select(models.MessageAnalysis.lag_ms).where(
                models.MessageAnalysis.message_id.in_(ids))).scalars().all()) if ids else []
        tail = ids[-int(rate * 10):]  # the last 10 s of writing: steady state, not the start
        with rt.uow() as uow:
            tail_lags = sorted(uow.execute(select(models.MessageAnalysis.lag_ms).where(
                models.MessageAnalysis.message_id.in_(tail))).scalars().all()) if tail else []
        out.update({"written": len(ids), "write_seconds": round(wrote_s, 1), "rate": round(len(ids) / wrote_s, 1),
                    "analysed": len(lags), "backlog_at_end": backlog_end,
                    "drain_s": round(drain_s, 1) if backlog_end else 0.0,
                    "lag_p50_s": _percentile(lags, 0.5) / 1000, "lag_p95_s": _percentile(lags, 0.95) / 1000,
                    "lag_p99_s": _percentile(lags, 0.99) / 1000, "lag_max_s": (lags[-1] if lags else 0) / 1000,
                    "last_10s_lag_p95_s": _percentile(tail_lags, 0.95) / 1000,
                    "load_average": [load_before, load_after]})
    finally:
        stop.touch()
        try:
            stdout, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate(timeout=10)
        log.close()
    try:
        out["analyzer"] = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        out["analyzer"] = {"error": (work / "analyzer.log").read_text()[-2000:]}
        return out
    # The job's runs while the writer wrote (not the catch-up before it).
    each = out["analyzer"].pop("each", [])
    during = [(n, took) for wall, n, took in each if writing_from is not None and wall >= writing_from]
    if during:
        out["runs_while_writing"] = {"runs": len(during), "messages_per_run": round(sum(n for n, _ in during) / len(during)),
                                     "mean_run_s": round(sum(t for _, t in during) / len(during), 2),
                                     "p95_run_s": _percentile(sorted(t for _, t in during), 0.95),
                                     "longest_run_s": max(t for _, t in during)}
    return out


def analyzer(spec_text: str) -> int:
    """The analysis worker for ``measure_lag``: ``analyze_messages`` every ``tick`` seconds, the
    models loaded first, until the stop file appears or the deadline passes."""
    from nlp import analysis
    from workers import jobs
    from workers.analysis import analyze_messages
    from workers.runtime import Runtime

    spec = json.loads(spec_text)
    rt = Runtime.build(_settings(spec["url"], Path(spec["work"]), spec["redis"]))
    analysis.load(rt.content.rules.brand_words)  # what `crmbot worker` does before it forks
    jobs.RUNTIME = rt
    stop, tick = Path(spec["stop"]), float(spec["tick"])
    deadline = time.monotonic() + float(spec["deadline_s"])
    runs, done, longest, busy = 0, 0, 0.0, 0.0
    each: list[tuple[float, int, float]] = []  # (wall clock at its start, messages, seconds)
    next_run = time.monotonic()
    while time.monotonic() < deadline and not stop.exists():
        started, wall = time.monotonic(), time.time()
        analysed = analyze_messages()
        took = time.monotonic() - started
        done += analysed
        each.append((round(wall, 3), analysed, round(took, 3)))
        runs, longest, busy = runs + 1, max(longest, took), busy + took
        next_run += tick
        time.sleep(max(0.0, next_run - time.monotonic()))
        next_run = max(next_run, time.monotonic() - tick)  # a run longer than a tick starts the next at once
    rt.engine.dispose()
    print(json.dumps({"runs": runs, "analysed": done, "longest_run_s": round(longest, 2),
                      "mean_run_s": round(busy / max(1, runs), 3), "each": each}))
    return 0


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def print_report(store: str, report: dict[str, Any], say: Callable[[str], None]) -> None:
    rollups = report["rollups"]
    say(f"\n{store}: rollups (goal: one day under {GOAL_ROLLUP_S:.0f} s)")
    say(f"{'rollup':36} {'n':>5} {'p50 s':>8} {'max s':>8}  goal")
    say(f"{'incremental, one day':36} {len(rollups['days']):>5} {rollups['p50_s']:>8.2f} {rollups['max_s']:>8.2f}  "
        f"{'PASS' if rollups['max_s'] < GOAL_ROLLUP_S else 'FAIL'}")
    say(f"{'first full rollup, 30 days':36} {1:>5} {rollups['full_30_days_s']:>8.2f} {rollups['full_30_days_s']:>8.2f}")
    say(f"\n{store}: dashboard queries, rollups fresh (ms; goal: under {GOAL_QUERY_MS:.0f} ms at p95)")
    say(f"{'query':40} {'n':>4} {'p50':>8} {'p95':>8} {'max':>8} {'SQL':>6}  goal")
    for r in report["queries"]:
        if "query" not in r:
            continue
        goal = "" if r["group"] == "baseline" else ("PASS" if r["p95_ms"] < GOAL_QUERY_MS else "FAIL")
        errors = f"  errors: {r['error_count']} {r['errors']}" if r["error_count"] else ""
        say(f"{r['query']:40} {r['n']:>4} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['max_ms']:>8.1f} "
            f"{r['statements']:>6}  {goal}{errors}")
    lag = report["lag"]
    if "lag_p95_s" in lag:
        say(f"\n{store}: analysis lag at {lag['rate_goal']:.0f} messages/s (goal: under {GOAL_LAG_S:.0f} s)")
        say(f"{'analysis lag':36} {'n':>6} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'max s':>7}  goal")
        say(f"{'analysis lag (s)':36} {lag['analysed']:>6} {lag['lag_p50_s']:>7.2f} {lag['lag_p95_s']:>7.2f} "
            f"{lag['lag_p99_s']:>7.2f} {lag['lag_max_s']:>7.2f}  "
            f"{'PASS' if lag['lag_max_s'] < GOAL_LAG_S and lag['backlog_at_end'] < lag['rate_goal'] * GOAL_LAG_S else 'FAIL'}")
        say(f"  written {lag['written']:,} in {lag['write_seconds']} s ({lag['rate']}/s); backlog when the writing "
            f"stopped: {lag['backlog_at_end']} (drained in {lag['drain_s']} s); p95 over the last 10 s: "
            f"{lag['last_10s_lag_p95_s']:.2f} s")
        say(f"  the job's runs while writing: {lag.get('runs_while_writing')}; in all (catch-up included): "
            f"{lag.get('analyzer')}")
    say(f"load average (1 min): rollups {rollups['load_average']}, queries {report['queries'][-1]['load_average']}, "
        f"lag {lag.get('load_average')}")


def run_store(store: str, opts: argparse.Namespace, work: Path, redis: EmbeddedRedis,
              say: Callable[[str], None]) -> dict[str, Any]:
    from crm_store import kpis
    from web.app import create_app
    from workers.runtime import Runtime

    cluster = None
    folder = work / store
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if store == "postgres":
            cluster = _postgres_cluster_class()(database="crmbot_bench")
            cluster.start()
            url = cluster.socket_url
        else:
            url = f"sqlite:///{folder / 'crmbot.db'}"
        say(f"[{store}] filling the store")
        fx = fill(url, opts.tickets, opts.messages, opts.customers or max(20, opts.messages // 40), opts.seed, say)
        started = time.perf_counter()
        counts = {**fx.counts, **extras(url, opts.messages, opts.seed, say)}
        fill_s = fx.fill_seconds + time.perf_counter() - started
        size = _size_mb(url)
        say(f"[{store}] filled in {fill_s:.0f} s, {size:,.0f} MB: "
            + ", ".join(f"{name} {count:,}" for name, count in counts.items()))
        rt = Runtime.build(_settings(url, folder, redis.url))
        app = create_app(rt.settings, rt)
        sla = kpis.first_response_minutes(rt.content.rules)
        today = kpis.brand_day(models.utcnow(), ZONE)
        with rt.uow() as uow:
            conversations = [tuple(r) for r in uow.execute(select(models.Conversation.id, models.Conversation.customer_id)
                                                            .where(models.Conversation.channel == "wechat")
                                                            .order_by(models.Conversation.id).limit(5000))]
        say(f"[{store}] rollups")
        rollups = measure_rollups(rt, sla, today, opts.rollup_days, say)
        queries: list[dict[str, Any]] = [{"load_average": None}]
        profiles: list[dict[str, Any]] = []
        if not opts.skip_queries:
            say(f"[{store}] dashboard queries")
            queries, profiles = measure_queries(rt, app, today, sla, conversations, opts.requests, opts.warmup,
                                                not opts.no_profile, say)
        say(f"[{store}] analysis lag")
        lag = measure_lag(rt, url, redis.url, folder, conversations, opts.rate, opts.lag_seconds, opts.tick,
                          opts.seed, say)
        rt.engine.dispose()
        report = {"store": store, "fill_seconds": round(fill_s, 1), "size_mb": round(size), "counts": counts,
                  "rollups": rollups, "queries": queries, "profiles": profiles, "lag": lag}
        print_report(store, report, say)
        return report
    finally:
        if cluster is not None:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kpis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=0, help="default: messages / 40")
    parser.add_argument("--requests", type=int, default=30, help="measured calls per query")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up calls per query")
    parser.add_argument("--rollup-days", type=int, default=5, help="busiest days whose incremental rollup is timed")
    parser.add_argument("--rate", type=float, default=200.0, help="inbound messages per second for the lag")
    parser.add_argument("--lag-seconds", type=float, default=45.0, help="how long the writer writes (at most 120)")
    parser.add_argument("--tick", type=float, default=2.0, help="seconds between two runs of the analysis job")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-profile", action="store_true", help="do not profile the queries over the goal")
    parser.add_argument("--skip-queries", action="store_true", help="rollups and lag only")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout; progress on stderr")
    parser.add_argument("--analyzer", help=argparse.SUPPRESS)  # the analysis worker process (internal)
    opts = parser.parse_args(argv)
    if opts.analyzer:
        return analyzer(opts.analyzer)
    opts.lag_seconds = min(opts.lag_seconds, 120.0)

    def say(line: str) -> None:
        print(line, file=sys.stderr if opts.json else sys.stdout, flush=True)

    started = dt.datetime.now(dt.timezone.utc)
    say(f"KPI rollups, dashboards and analysis lag, {started:%a %b %d %H:%M UTC %Y}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {_load_average()}: {opts.tickets:,} tickets, "
        f"{opts.messages:,} messages")
    work = Path(tempfile.mkdtemp(prefix="crmbot-bench-kpis-"))
    redis = EmbeddedRedis(work)
    stores = ("sqlite", "postgres") if opts.store == "both" else (opts.store,)
    reports, failure = [], None
    try:
        for store in stores:
            reports.append(run_store(store, opts, work, redis, say))
    except KeyboardInterrupt:
        failure = "interrupted"
    except Exception as exc:  # noqa: BLE001 - report it, clean up, exit 1
        failure = f"{exc.__class__.__name__}: {exc}"
        import traceback
        traceback.print_exc()
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    if opts.json:
        print(json.dumps({"started": started.isoformat(timespec="seconds"), "cores": os.cpu_count(),
                          "tickets": opts.tickets, "messages": opts.messages, "goals": {
                              "query_ms": GOAL_QUERY_MS, "rollup_s": GOAL_ROLLUP_S, "lag_s": GOAL_LAG_S},
                          "stores": reports, "failure": failure}, ensure_ascii=False, default=str))
    if failure:
        say(f"benchmark failed: {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
