"""``crmbot demo`` (issue 13): a demo brand written through the service's real paths, on both stores."""
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
from crm_store.models import AuditEntry, ChannelIdentity, Lead, Member, Message, PointsEntry, Ticket
from crm_store.references import SHANGHAI
from web import demo as demo_module
from web.demo import AGENTS, MARKETER, OPENID_PREFIX, SUPERVISOR, DemoExists, DemoSummary, fill_demo

DAYS = 7


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC


@pytest.fixture()
def demo(runtime) -> DemoSummary:  # type: ignore[no-untyped-def]
    return fill_demo(runtime, customers=40, days=DAYS, seed=13)


def test_tickets_in_every_state_opened_by_the_bot_and_worked_by_staff(runtime, demo) -> None:
    now = datetime.now(timezone.utc)
    with runtime.uow() as uow:
        tickets = list(uow.session.scalars(select(Ticket)))
        states = Counter(t.status for t in tickets)
        assert set(states) == {models.OPEN, models.CLAIMED, models.RESOLVED, models.CANCELLED}
        assert demo.tickets == dict(states)
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
        leads = list(uow.session.scalars(select(Lead)))
        assert leads and all(lead.name and len(lead.phone) == 11 and lead.source_channel == "wechat" for lead in leads)
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
        assert len({_utc(t.created_at).astimezone(SHANGHAI).date() for t in tickets}) >= 3
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
