"""Ledger, lead pipeline, references and the per-customer lock, on both stores."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.inbox import receive
from channels import base
from channels.base import InboundMessage
from crm_store import membership, services
from config.content import LevelRule
from crm_store.membership import PointsError
from crm_store.models import ChannelIdentity, Conversation, Customer, Member, Message
from tests.lock_waits import wait_for_lock_waiter

LEVELS = [LevelRule("普通", 0, ()), LevelRule("银卡", 1000, ()), LevelRule("金卡", 5000, ())]


@pytest.fixture()
def member_id(runtime) -> int:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        customer = uow.customers.add(Customer())
        uow.flush()
        member = Member(customer_id=customer.id, card_no="C1", phone="13700000000")
        uow.session.add(member)
        uow.commit()
        return member.id


def test_ledger_is_append_only_with_derived_balance(runtime, member_id) -> None:
    with runtime.uow() as uow:
        membership.add_points(member_id, "earn", 1500, "消费", "k1", uow)
        membership.add_points(member_id, "redeem", -600, "兑换", "k2", uow)
        membership.add_points(member_id, "refund", 100, "退单返还", "k3", uow)
        membership.add_points(member_id, "expire", -50, "年度过期", "k4", uow)
        membership.add_points(member_id, "adjust", -20, "人工调整", "k5", uow)
        again = membership.add_points(member_id, "earn", 999, "重复请求", "k1", uow)
        assert again.points == 1500  # the first entry of that key, nothing new
        standing = membership.standing(member_id, LEVELS, uow)
        assert (standing.balance, standing.lifetime, standing.level.name) == (930, 1500, "银卡")
        assert membership.level(member_id, LEVELS, uow) == standing.level
        assert standing.next_level.name == "金卡" and standing.points_to_next == 3500
        assert [e.idempotency_key for e in membership.history(member_id, uow, 2)] == ["k5", "k4"]


@pytest.mark.parametrize("kind, points", [("earn", -5), ("redeem", 5), ("refund", 0), ("bonus", 5),
                                          ("redeem", -1)])
def test_ledger_refuses_entries_that_break_it(runtime, member_id, kind, points) -> None:
    with runtime.uow() as uow:
        with pytest.raises(PointsError):
            membership.add_points(member_id, kind, points, "bad", f"bad-{kind}", uow)
        assert membership.balance(member_id, uow) == 0


def test_lead_pipeline(runtime) -> None:
    with runtime.uow() as uow:
        customer = uow.customers.add(Customer())
        uow.flush()
        lead, new = services.capture_lead(customer.id, uow, name="李", phone="13900000000", interest="团购",
                                          source_channel="wechat")
        assert new and lead.status == "new"
        for status in ("contacted", "qualified", "converted"):
            assert services.set_lead_status(lead.id, status, uow).status == status
        with pytest.raises(ValueError):
            services.set_lead_status(lead.id, "won", uow)
        # A converted lead is closed: the same phone later starts a new lead.
        assert services.capture_lead(customer.id, uow, name="李", phone="13900000000", interest="再次",
                                     source_channel="wechat")[1]


def test_references_are_unique_under_concurrency(runtime) -> None:
    references: list[str] = []

    def take() -> None:
        for _ in range(5):
            with runtime.uow() as uow:
                references.append(services.next_reference("T", uow))
                uow.commit()

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(references) == 20 and len(set(references)) == 20


def test_messages_of_one_customer_are_answered_in_order(runtime) -> None:
    """The second message waits until the first is answered and committed (its state saved)."""
    order: list[str] = []
    router = runtime.router
    real_answer = router.answer
    first_answering, release_first = threading.Event(), threading.Event()

    def held_answer(msg, *args):  # type: ignore[no-untyped-def]
        order.append(f"{msg.text}-start")
        if msg.text == "first":
            # Parked inside its transaction, the customer's lock held, until the second waits for it.
            first_answering.set()
            release_first.wait(10)
        reply = real_answer(msg, *args)
        order.append(f"{msg.text}-end")
        return reply

    router.answer = held_answer  # type: ignore[method-assign]

    def message(text: str, n: int) -> InboundMessage:
        return InboundMessage("wechat", "gh", "oSameUser", f"msg:{n}", base.TEXT, datetime.now(timezone.utc), text)

    receive(message("warm-up", 0), runtime.uow, router)  # the customer exists: no insert race
    order.clear()
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(receive, message("first", 1), runtime.uow, router)
        try:
            assert first_answering.wait(10), "the first message never reached the router"
            second = pool.submit(receive, message("second", 2), runtime.uow, router)
            wait_for_lock_waiter(runtime.engine)  # the store shows the second waiting for the first
            assert order == ["first-start"]
        finally:
            release_first.set()
        first.result(timeout=10)
        second.result(timeout=10)
    assert order == ["first-start", "first-end", "second-start", "second-end"]


def _conversation_of(runtime, openid: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A customer with a conversation of two messages (the push and the bot's reply)."""
    msg = InboundMessage("wechat", "gh", openid, f"msg:{openid}", base.TEXT, datetime.now(timezone.utc), "你好")
    receive(msg, runtime.uow, runtime.router)
    with runtime.uow() as uow:
        conversation = uow.session.scalars(select(Conversation).join(
            ChannelIdentity, ChannelIdentity.id == Conversation.identity_id).filter(
            ChannelIdentity.external_id == openid)).one()
        return conversation.customer_id, conversation.id


def _message_customers(runtime, conversation_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        return list(uow.session.scalars(select(Message.customer_id).filter_by(conversation_id=conversation_id)))


def test_merge_moves_messages_with_their_conversation_and_back(runtime) -> None:
    merged, conversation_id = _conversation_of(runtime, "oMerged")
    kept, _ = _conversation_of(runtime, "oKept")
    assert _message_customers(runtime, conversation_id) == [merged, merged]
    with runtime.uow() as uow:
        merge_id = membership.merge_customers(merged, kept, "test", uow).id
        uow.commit()
    assert _message_customers(runtime, conversation_id) == [kept, kept]
    with runtime.uow() as uow:
        membership.unmerge(merge_id, uow)
        uow.commit()
    assert _message_customers(runtime, conversation_id) == [merged, merged]


def test_a_message_cannot_name_a_customer_other_than_its_conversations(runtime) -> None:
    customer_id, conversation_id = _conversation_of(runtime, "oOwner")
    other, _ = _conversation_of(runtime, "oOther")
    with runtime.uow() as uow, pytest.raises(IntegrityError):
        services.record_outbound(conversation_id, "wrong customer", uow, customer_id=other)
    with runtime.uow() as uow:
        services.record_outbound(conversation_id, "right customer", uow)  # the conversation's, read
        uow.commit()
    assert _message_customers(runtime, conversation_id) == [customer_id] * 3
