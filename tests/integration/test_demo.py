"""``crmbot demo`` (issues 13 and 14): a demo brand written through the service's real paths, on both stores."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from crm_store import models
from crm_store.models import (AuditEntry, ChannelIdentity, FollowerSnapshot, Lead, Member, Mention, Message,
                              PointsEntry, PollRun, Ticket, WatchTerm)
from crm_store.references import SHANGHAI
from web import demo as demo_module
from web.demo import (ACCOUNT, AGENTS, MARKETER, OPENID_PREFIX, SUPERVISOR, TWITTER_USER_ID, WEIBO_UID, DemoExists,
                      DemoSummary, fill_demo)

DAYS = 7


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC


@pytest.fixture()
def demo(runtime) -> DemoSummary:  # type: ignore[no-untyped-def]
    return fill_demo(runtime, customers=40, days=DAYS, seed=13)


def test_tickets_in_every_state_opened_by_the_bot_and_worked_by_staff(runtime, demo) -> None:
    now = datetime.now(timezone.utc)
    with runtime.uow() as uow:
        everything = list(uow.session.scalars(select(Ticket)))
        assert demo.tickets == dict(Counter(t.status for t in everything))
        tickets = [t for t in everything if t.source != "mention"]  # WeChat's; mentions' are below
        states = Counter(t.status for t in tickets)
        assert set(states) == {models.OPEN, models.CLAIMED, models.RESOLVED, models.CANCELLED}
        assert any(t.status == models.OPEN and t.breached(now) for t in tickets)  # past its SLA
        assert any(t.status == models.OPEN and not t.breached(now) for t in tickets)  # still in time
        assert demo.breached >= 1
        for ticket in tickets:  # the bot opened each from what the customer wrote in its conversation
            said = uow.session.scalars(select(Message.text).filter_by(
                conversation_id=ticket.conversation_id, direction="in")).all()
            assert ticket.description.split("\n")[0] in said
        worked = [t for t in tickets if t.status in (models.CLAIMED, models.RESOLVED)]
        assert worked and all(t.assignee in (*AGENTS, SUPERVISOR) and t.first_response_at for t in worked)
        trail = Counter((a.action, a.actor in (*AGENTS, SUPERVISOR)) for a in uow.session.scalars(
            select(AuditEntry).filter_by(target_type="ticket")))
        assert trail[("claim", True)] and trail[("reply", True)] and trail[("resolve", True)]
        assert set(trail) <= {("claim", True), ("reply", True), ("resolve", True)}


def test_satisfaction_answers_land_through_the_bot(runtime, demo) -> None:
    with runtime.uow() as uow:
        resolved = list(uow.session.scalars(select(Ticket).filter_by(status=models.RESOLVED)))
        rated = [t for t in resolved if t.csat_score is not None]
        assert rated and demo.csat_answers == len(rated)
        assert any(t.csat_asked_at is not None and t.csat_score is None for t in resolved)  # asked, not answered
        for ticket in rated:  # the customer answered the question in the chat, after it was asked
            answers = uow.session.scalars(select(Message.text).where(
                Message.conversation_id == ticket.conversation_id, Message.direction == "in",
                Message.created_at > ticket.csat_asked_at)).all()
            assert any(str(ticket.csat_score) in text for text in answers)


def test_members_leads_and_delivered_outbound(runtime, demo) -> None:
    with runtime.uow() as uow:
        members = list(uow.session.scalars(select(Member)))
        assert members and demo.members == len(members)
        for member in members:  # bound through the bot's flow: it told the customer the card number
            told = uow.session.scalars(select(Message.text).filter_by(customer_id=member.customer_id,
                                                                      direction="out")).all()
            assert any(member.card_no in text for text in told)
        with_points = uow.session.scalar(select(func.count(func.distinct(PointsEntry.member_id))))
        assert with_points == len(members) and demo.points_entries > len(members)
        leads = list(uow.session.scalars(select(Lead).filter_by(source_channel="wechat")))
        assert leads and all(lead.name and len(lead.phone) == 11 for lead in leads)
        assert {lead.status for lead in leads} - {"new"}  # the marketer followed some up
        marketer = uow.session.scalars(select(AuditEntry.actor).filter_by(action="lead.status")).all()
        assert marketer and set(marketer) == {MARKETER}
        delivery = Counter(uow.session.scalars(select(Message.delivery).filter_by(direction="out")))
        assert delivery[models.QUEUED] == 0 and delivery[models.SENDING] == 0  # nothing left for a worker
        assert delivery[models.SENT] > 0 and delivery[models.PASSIVE] > 0
        staff_replies = uow.session.scalars(select(Message.delivery).where(Message.author.like("agent:%"))).all()
        assert staff_replies and models.QUEUED not in staff_replies


def test_weeks_of_history_on_the_simulated_clock(runtime, demo) -> None:
    now = datetime.now(timezone.utc)
    with runtime.uow() as uow:
        sent = [_utc(at) for at in uow.session.scalars(select(Message.created_at).filter_by(direction="in"))]
        days = {at.astimezone(SHANGHAI).date() for at in sent}
        assert len(days) >= DAYS - 2  # spread over the days, not all written just now
        assert min(sent) >= now - timedelta(days=DAYS, minutes=5) and max(sent) <= now
        tickets = list(uow.session.scalars(select(Ticket)))
        assert len({_utc(t.created_at).astimezone(SHANGHAI).date() for t in tickets if t.source != "mention"}) >= 3
        for ticket in tickets:  # the reference carries the day it was opened on, as live
            assert ticket.reference[1:9] == f"{_utc(ticket.created_at).astimezone(SHANGHAI):%Y%m%d}"
            assert _utc(ticket.first_response_due) > _utc(ticket.created_at)
    assert models.datetime is datetime  # the service's clock is the real one again


def test_a_second_demo_is_refused(runtime, demo) -> None:
    with pytest.raises(DemoExists, match="demo data already"):
        fill_demo(runtime, customers=5, days=2)
    with runtime.uow() as uow:
        assert demo_module.demo_customers(uow) == 40
        assert uow.session.scalar(select(func.count()).select_from(Ticket)) == sum(demo.tickets.values())
        assert uow.session.scalar(select(func.count()).select_from(Mention)) == sum(demo.mentions.values())
        assert uow.session.scalar(select(func.count()).select_from(FollowerSnapshot)) == \
            sum(series.days for series in demo.followers)


def test_mentions_on_both_channels_heard_by_the_listener_over_the_days(runtime, demo) -> None:
    now = datetime.now(timezone.utc)
    with runtime.uow() as uow:
        mentions = list(uow.session.scalars(select(Mention)))
        by_channel = Counter(m.channel for m in mentions)
        assert demo.mentions == dict(by_channel) and by_channel["weibo"] >= 20 and by_channel["twitter"] >= 10
        assert {(m.channel, m.account) for m in mentions} == {("weibo", WEIBO_UID), ("twitter", TWITTER_USER_ID)}
        for channel in ("weibo", "twitter"):  # posted over the days, not all at once
            assert len({_utc(m.created_at).astimezone(SHANGHAI).date() for m in mentions if m.channel == channel}) \
                >= DAYS - 2
        for m in mentions:  # found by a poll after it was posted, on the simulated clock
            assert now - timedelta(days=DAYS, minutes=5) <= _utc(m.created_at) <= _utc(m.fetched_at) <= now
            assert m.external_id.isdigit() and m.customer_id is not None and m.sentiment and m.intent
            if m.kind == "comment":  # Weibo answers a comment under its post
                assert m.channel == "weibo" and m.reply_ref == f"{m.in_reply_to}/{m.external_id}"
            else:
                assert m.reply_ref == m.external_id
        assert {m.sentiment for m in mentions} == {"pos", "neu", "neg"}
        assert {m.lang for m in mentions if m.channel == "weibo"} == {"zh"}
        assert Counter(m.lang for m in mentions if m.channel == "twitter").most_common(1)[0][0] == "en"
        followers = sorted(m.author_followers or 0 for m in mentions)
        assert followers[-1] >= 20 * followers[len(followers) // 2]  # a heavy tail of influencers
        assert any(m.author_verified for m in mentions) and not all(m.author_verified for m in mentions)
        assert max(Counter(m.author_id for m in mentions).values()) >= 2  # some authors come back
        assert any(m.reposts + m.comments + m.likes > 0 for m in mentions)
        terms = {t.term: t.kind for t in uow.session.scalars(select(WatchTerm))}
        assert set(terms.values()) == set(models.WATCH_TERM_KINDS)
        assert {terms[term] for m in mentions for term in m.watch_terms} == set(models.WATCH_TERM_KINDS)
        runs = list(uow.session.scalars(select(PollRun)))
        assert {"statuses", "comments", "mentions", "followers"} <= {r.source for r in runs}
        assert any(r.source.startswith("search:") and r.new for r in runs)  # a tweet only search finds
        assert all(r.outcome == "ok" for r in runs) and sum(r.new for r in runs) == len(mentions)
        assert len({_utc(r.started_at).astimezone(SHANGHAI).date() for r in runs}) >= DAYS


def test_complaints_and_purchase_intent_become_tickets_and_leads_that_staff_work(runtime, demo) -> None:
    with runtime.uow() as uow:
        mentions = list(uow.session.scalars(select(Mention)))
        ticketed = [m for m in mentions if m.ticket_id is not None]
        leading = [m for m in mentions if m.lead_id is not None]
        assert {m.channel for m in ticketed} == {m.channel for m in leading} == {"weibo", "twitter"}
        for m in ticketed:  # opened by the rules from the post, when a poll found it
            ticket = uow.session.get(Ticket, m.ticket_id)
            assert ticket.source == "mention" and ticket.conversation_id is None
            assert ticket.customer_id == m.customer_id and m.text in ticket.description
            assert _utc(m.fetched_at) >= _utc(ticket.created_at) >= _utc(m.created_at)
            assert m.sentiment == "neg" or m.intent == "complaint"
        tickets = list(uow.session.scalars(select(Ticket).filter_by(source="mention")))
        states = Counter(t.status for t in tickets)
        assert demo.social_tickets == dict(states) and states[models.RESOLVED] and states[models.OPEN]
        resolved = [t.reference for t in tickets if t.status == models.RESOLVED]
        trail = {(a.target_id, a.action) for a in uow.session.scalars(select(AuditEntry).where(
            AuditEntry.target_id.in_(resolved), AuditEntry.actor.in_((*AGENTS, SUPERVISOR))))}
        assert trail == {(reference, action) for reference in resolved for action in ("claim", "resolve")}
        for m in leading:
            lead = uow.session.get(Lead, m.lead_id)
            assert lead.source_channel == m.channel and lead.customer_id == m.customer_id and lead.phone == ""
            assert m.text in lead.interest and m.intent != "complaint"
        leads = list(uow.session.scalars(select(Lead).where(Lead.source_channel.in_(("weibo", "twitter")))))
        statuses = Counter(lead.status for lead in leads)
        assert demo.social_leads == dict(statuses) and len(statuses) >= 3
        moved = uow.session.scalars(select(AuditEntry.actor).where(
            AuditEntry.action == "lead.status", AuditEntry.target_id.in_([str(lead.id) for lead in leads]))).all()
        assert moved and set(moved) == {MARKETER}


def test_a_daily_follower_history_for_every_account(runtime, demo) -> None:
    today = datetime.now(timezone.utc).astimezone(SHANGHAI).date()
    with runtime.uow() as uow:
        series: dict[tuple[str, str], list[FollowerSnapshot]] = {}
        for snapshot in uow.session.scalars(select(FollowerSnapshot).order_by(FollowerSnapshot.day)):
            series.setdefault((snapshot.channel, snapshot.account), []).append(snapshot)
        assert set(series) == {("weibo", WEIBO_UID), ("twitter", TWITTER_USER_ID), ("wechat", ACCOUNT)}
        for (channel, _), snapshots in series.items():
            days, counts = [s.day for s in snapshots], [s.followers for s in snapshots]
            assert len(days) >= DAYS and days[-1] == today and len(set(days)) == len(days)
            assert counts[-1] > counts[0] > 0 and len(set(counts)) > 2  # growing, not a flat line
            assert all(abs(b - a) < counts[0] * 0.05 for a, b in zip(counts, counts[1:]))  # day by day
            if channel != "wechat":  # taken by the listener's polls, one each day
                taken = uow.session.scalar(select(func.count()).select_from(PollRun).filter_by(
                    channel=channel, source="followers"))
                assert taken == len(days)
        following = uow.session.scalar(select(func.count()).select_from(ChannelIdentity).filter_by(
            channel="wechat", account=ACCOUNT, subscribed=True))
        before = demo_module.WECHAT_BASE_FOLLOWERS + demo_module.WECHAT_SILENT_PER_CUSTOMER * 40
        assert following and series[("wechat", ACCOUNT)][-1].followers == before + following
    assert {(f.channel, f.account) for f in demo.followers} == set(series)


def _crmbot() -> list[str]:
    script = Path(sys.executable).with_name("crmbot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "web.cli"]


def test_the_crmbot_demo_command_migrates_fills_and_refuses_a_second_time(tmp_path, redis_url, redis) -> None:
    store = f"sqlite:///{tmp_path / 'var' / 'crmbot.db'}"
    env = {**os.environ, "CRMBOT_VAR_DIR": str(tmp_path / "var"), "CRMBOT_DATABASE_URL": store,
           "CRMBOT_REDIS_URL": redis_url}
    first = subprocess.run([*_crmbot(), "demo", "--customers", "20", "--days", "5"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "20 customers over 5 days" in first.stdout and "tickets" in first.stdout and "leads" in first.stdout
    assert "mentions" in first.stdout and f"weibo {WEIBO_UID}" in first.stdout and f"wechat {ACCOUNT}" in first.stdout
    engine = create_engine(store)
    try:
        with engine.connect() as connection:
            demo_customers = connection.scalar(select(func.count()).select_from(ChannelIdentity).where(
                ChannelIdentity.external_id.startswith(OPENID_PREFIX)))
            assert demo_customers == 20
            assert connection.scalar(select(func.count()).select_from(Message).where(
                Message.delivery == models.QUEUED)) == 0
    finally:
        engine.dispose()
    second = subprocess.run([*_crmbot(), "demo", "--customers", "20"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 1 and "demo data already (20 demo customers)" in second.stderr


def test_every_kpi_has_a_believable_value_and_the_rollups_are_ready(runtime, demo) -> None:
    from crm_store import kpis

    zone = runtime.settings.timezone
    today = kpis.brand_day(models.utcnow(), zone)
    period = kpis.Period(today - timedelta(days=DAYS - 1), today, zone)
    sla = kpis.first_response_minutes(runtime.content.rules)
    with runtime.uow() as uow:
        # The dashboards open without computing (they take a rollup under 5 minutes old).
        assert kpis.stale_days(uow, period, sla) == []
        assert kpis.stale_ticket_days(uow, period, max_age=timedelta(minutes=5)) == []
        service = {r["channel"]: r for r in kpis.service_kpis(uow, period, sla) if r["agent"] is None}
        fans = {r["channel"]: r for r in kpis.fan_kpis(uow, period) if r["agent"] is None}
        agents = [r for r in kpis.service_kpis(uow, period, sla) if r["agent"] in AGENTS]
    wechat = service["wechat"]
    assert 0.7 <= wechat["response_rate"] <= 1.0 and wechat["response_rate_denominator"] > 50
    assert 0 < wechat["response_time_median_s"] <= wechat["response_time_p90_s"]
    assert 0 < wechat["bot_latency_p50_ms"] <= wechat["bot_latency_p99_ms"] < 5000
    assert 0.3 <= wechat["resolution_rate"] <= 1.0 and 0.3 <= wechat["self_service_rate"] < 1.0
    assert wechat["satisfaction_rate"] is not None and 0 < wechat["csat_answer_rate"] <= 1.0
    assert agents and all(r["resolution_rate_denominator"] > 0 for r in agents)
    for channel in ("weibo", "twitter"):
        assert fans[channel]["followers"] > 0 and fans[channel]["reach"] > 0 and fans[channel]["engagement"] > 0
        assert -1 <= fans[channel]["net_sentiment"] <= 1
    assert fans["wechat"]["followers"] > 0 and fans["wechat"]["net_growth"] is not None
    captured = [r for r in fans.values() if r.get("conversion_rate_denominator")]
    assert captured and all(0 <= r["conversion_rate"] <= 1 for r in captured)
