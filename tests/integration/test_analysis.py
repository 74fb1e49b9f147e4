"""The analysis job (workers/analysis.py) on both stores: every inbound text message analysed
once, from the store as its queue; escalation of negative complaints and strongly negative
messages; nothing skipped when a message becomes visible after later ones were analysed."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from crm_store import models, services
from crm_store.models import MessageAnalysis, Ticket, as_utc, utcnow
from nlp import analysis
from tests.integration.test_api import says
from tests.integration.test_kpis import Store
from workers.analysis import analyze_waiting

ANGRY = "你们这是什么垃圾服务，气死我了，太恶心了！！！"


@pytest.fixture(scope="module", autouse=True)
def models_loaded() -> None:
    analysis.load()


def analyses_of(runtime) -> dict[int, MessageAnalysis]:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        return {a.message_id: a for a in uow.session.scalars(select(MessageAnalysis))}


def test_every_inbound_text_is_analysed_once(client, runtime) -> None:
    says(client, "你们几点开门", openid="oAnalysis1")
    says(client, "奶茶里有头发，太恶心了", openid="oAnalysis2")
    says(client, "I love the new oolong latte", openid="oAnalysis3")
    first = analyze_waiting(runtime.uow, runtime.content)
    assert len(first) == 3 and analyze_waiting(runtime.uow, runtime.content) == []  # twice: once
    found = analyses_of(runtime)
    with runtime.uow() as uow:
        texts = {m.id: m.text for m in uow.session.scalars(select(models.Message).where(
            models.Message.id.in_(found)))}
    by_text = {texts[i]: a for i, a in found.items()}
    assert by_text["奶茶里有头发，太恶心了"].sentiment == "neg" and by_text["奶茶里有头发，太恶心了"].intent == "complaint"
    assert by_text["I love the new oolong latte"].sentiment == "pos" and by_text["I love the new oolong latte"].lang == "en"
    assert all(a.lag_ms >= 0 and a.keywords is not None for a in found.values())


def test_a_strongly_negative_message_without_a_ticket_opens_one(runtime) -> None:
    with runtime.uow() as uow:
        s = Store(uow)
        talk = s.conversation()
        s.says(talk, utcnow()).text = ANGRY
        calm = s.conversation()
        s.says(calm, utcnow()).text = "今天天气不错"
        uow.commit()
    analyze_waiting(runtime.uow, runtime.content)
    with runtime.uow() as uow:
        [ticket] = uow.session.scalars(select(Ticket))
        assert (ticket.source, ticket.conversation_id, ticket.description) == ("analysis", talk.id, ANGRY)
        assert ticket.priority in ("P1", "P2")
        assert [a.escalation for a in uow.session.scalars(select(MessageAnalysis).order_by(
            MessageAnalysis.message_id))] == ["ticket_opened", None]


def test_a_negative_complaint_raises_its_tickets_priority_once(runtime) -> None:
    with runtime.uow() as uow:
        s = Store(uow)
        talk = s.conversation()
        s.ticket(talk, utcnow() - timedelta(minutes=5), "P3", assignee="alice", status=models.CLAIMED)
        s.says(talk, utcnow()).text = "奶茶里有头发，太恶心了，退款"
        uow.commit()
    analyze_waiting(runtime.uow, runtime.content)
    with runtime.uow() as uow:
        s = Store(uow)
        ticket = uow.session.scalar(select(Ticket))
        assert ticket.priority == "P2"
        s.says(uow.session.get(models.Conversation, ticket.conversation_id), utcnow()).text = "还是没人管？退款！太差了"
        uow.commit()
    analyze_waiting(runtime.uow, runtime.content)
    with runtime.uow() as uow:
        assert uow.session.scalar(select(Ticket.priority)) == "P2"  # raised once, not walked to P1
        trail = list(uow.session.scalars(select(models.AuditEntry).filter_by(action="priority.raise")))
        assert [(e.actor, e.detail["previous"], e.detail["priority"]) for e in trail] == [("analysis", "P3", "P2")]
        assert uow.session.scalar(select(func.count()).select_from(Ticket)) == 1


def test_food_safety_told_after_the_ticket_opened_makes_it_p1_with_its_category(runtime) -> None:
    with runtime.uow() as uow:
        s = Store(uow)
        talk = s.conversation()
        s.ticket(talk, utcnow() - timedelta(minutes=5), "P3")
        s.says(talk, utcnow()).text = "奶茶是酸的，太恶心了，退款"
        uow.commit()
    analyze_waiting(runtime.uow, runtime.content)  # one step, as any later complaint
    with runtime.uow() as uow:
        ticket = uow.session.scalar(select(Ticket))
        assert (ticket.priority, ticket.category) == ("P2", "quality")
        Store(uow).says(uow.session.get(models.Conversation, ticket.conversation_id),
                        utcnow()).text = "补充一下，孩子喝完肚子一直疼，吐了一晚上"  # told calmly
        uow.commit()
    analyze_waiting(runtime.uow, runtime.content)  # raised before, but this is food safety
    with runtime.uow() as uow:
        ticket = uow.session.scalar(select(Ticket))
        assert (ticket.priority, ticket.category) == ("P1", "food_safety")
        assert as_utc(ticket.first_response_due) <= as_utc(ticket.created_at) + timedelta(minutes=15)
        last = uow.session.scalars(select(models.AuditEntry).filter_by(action="priority.raise")
                                   .order_by(models.AuditEntry.id)).all()[-1]
        assert (last.detail["previous"], last.detail["priority"], last.detail["category"]) == ("P2", "P1", "food_safety")


def test_no_ticket_while_the_bot_takes_a_complaint_down(runtime) -> None:
    with runtime.uow() as uow:
        s = Store(uow)
        talk = s.conversation()
        s.says(talk, utcnow()).text = ANGRY
        services.save_conversation_state(talk.id, {"flow": {"name": "complaint", "step": "order"}}, uow, 600)
        uow.commit()
    analyze_waiting(runtime.uow, runtime.content)
    with runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Ticket)) == 0


def test_a_message_seen_after_later_ones_were_analysed_is_not_skipped(runtime) -> None:
    with runtime.uow() as uow:
        s = Store(uow)
        talk = s.conversation()
        first, gap, third = s.says(talk, utcnow()), s.says(talk, utcnow()), s.says(talk, utcnow())
        uow.commit()
        gap_id = gap.id
        uow.session.delete(gap)  # the id was handed out, its transaction has not committed yet
        uow.commit()
    assert analyze_waiting(runtime.uow, runtime.content) == [first.id, third.id]
    with runtime.uow() as uow:  # ... and now it has
        uow.session.add(models.Message(id=gap_id, conversation_id=talk.id, customer_id=talk.customer_id,
                                       direction="in", kind="text", text="还在吗", author="customer",
                                       sent_at=utcnow(), created_at=utcnow()))
        uow.commit()
    assert analyze_waiting(runtime.uow, runtime.content) == [gap_id]


def test_the_complaint_that_opened_a_ticket_does_not_raise_it_again(client, runtime) -> None:
    says(client, "我昨天买的奶茶里有异物，太恶心了", openid="oAnalysisOpen")
    with runtime.uow() as uow:
        before = uow.session.scalar(select(Ticket.priority))
    assert before is not None
    analyze_waiting(runtime.uow, runtime.content)
    with runtime.uow() as uow:
        assert uow.session.scalar(select(Ticket.priority)) == before
        assert uow.session.scalar(select(func.count()).select_from(Ticket)) == 1


def test_a_message_weeks_old_is_analysed_and_does_not_block_the_rest(runtime) -> None:
    with runtime.uow() as uow:
        s = Store(uow)
        talk = s.conversation()
        old = s.says(talk, utcnow() - timedelta(days=40))  # past a 32-bit count of milliseconds
        new = s.says(talk, utcnow())
        uow.commit()
    assert analyze_waiting(runtime.uow, runtime.content) == [old.id, new.id]
    lags = {i: a.lag_ms for i, a in analyses_of(runtime).items()}
    assert lags[old.id] == 2**31 - 1 and lags[new.id] < 60_000
