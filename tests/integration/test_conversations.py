"""Scenarios of issue 3, told through the real WeChat webhook (signed pushes), then checked in the store."""
from __future__ import annotations

import itertools
import logging
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from bot.otp import MemoryCodeSender
from channels.wechat_push import WeChatServer, event_xml, text_xml
from crm_store import membership, models, services
from crm_store.models import ChannelIdentity, CustomerMerge, Lead, Member, Message, Ticket
from tests.conftest import ACCOUNT, APP_ID, TOKEN, fixture_xml
from workers import actions

_msg_ids = itertools.count(10_000)
PHONE = "13812345678"


class WeChatUser:
    """One customer talking to the brand's Official Account through the real webhook."""

    def __init__(self, client, openid: str) -> None:  # type: ignore[no-untyped-def]
        self.client, self.openid, self.server = client, openid, WeChatServer(TOKEN, APP_ID)

    def _push(self, xml: str) -> str:
        query, body = self.server.push(xml)
        response = self.client.post(f"/webhooks/wechat?{query}", data=body)
        assert response.status_code == 200, response.data
        reply = self.server.read_reply(response.data)
        return reply["Content"] if reply else ""

    def says(self, text: str) -> str:
        return self._push(text_xml(ACCOUNT, self.openid, text, next(_msg_ids)))

    def event(self, event: str, key: str | None = None) -> str:
        return self._push(event_xml(ACCOUNT, self.openid, event, key, create_time=next(_msg_ids)))

    def sends_image(self) -> str:
        xml = fixture_xml("image").replace("oUser0000000000000000000001", self.openid)
        return self._push(re.sub(r"<MsgId>\d+</MsgId>", f"<MsgId>{next(_msg_ids)}</MsgId>", xml))


@pytest.fixture()
def codes(runtime) -> MemoryCodeSender:  # type: ignore[no-untyped-def]
    runtime.code_sender = MemoryCodeSender()
    return runtime.code_sender


@pytest.fixture()
def user(client, codes) -> WeChatUser:  # type: ignore[no-untyped-def]
    return WeChatUser(client, "oAlice000000000000000000001")


def rows(runtime, model, **where):  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        return list(uow.session.scalars(select(model).filter_by(**where).order_by(model.id)))


def customer_of(runtime, openid: str) -> int:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        return uow.identities.find("wechat", ACCOUNT, openid).customer_id


def bind(user: WeChatUser, codes: MemoryCodeSender, phone: str = PHONE) -> str:
    assert "手机号" in user.says("绑卡")
    assert "验证码已发送至 138****5678" in user.says(phone) or phone != PHONE
    return user.says(codes.codes[phone])


def test_bind_then_balance_history_and_level(user, codes, runtime) -> None:
    assert "绑卡" in user.says("查积分")  # not a member yet
    assert "手机号" in user.says("绑卡")
    assert "格式不对" in user.says("12345")
    assert "138****5678" in user.says("138 1234 5678")
    wrong = "000000" if codes.codes[PHONE] != "000000" else "111111"
    assert "还可尝试 2 次" in user.says(wrong)
    done = user.says(codes.codes[PHONE])
    assert "绑定成功" in done and "普通会员" in done
    [member] = rows(runtime, Member)
    assert member.phone == PHONE and member.customer_id == customer_of(runtime, user.openid)
    with runtime.uow() as uow:
        membership.add_points(member.id, "earn", 1200, "门店消费", "order-1", uow)
        membership.add_points(member.id, "earn", 1200, "门店消费", "order-1", uow)  # a retry: once
        membership.add_points(member.id, "redeem", -200, "兑换咖啡券", "redeem-1", uow)
        uow.commit()
    assert "1000" in user.says("积分")
    history = user.says("积分明细")
    assert "-200 兑换咖啡券" in history and "+1200 门店消费" in history
    level = user.says("我的等级")
    assert "银卡会员" in level and "3800" in level and "金卡会员" in level
    assert "已绑定会员卡" in user.says("绑卡")


def test_binding_links_an_existing_card_and_a_weibo_lead(user, codes, runtime) -> None:
    with runtime.uow() as uow:
        # A card from the shop's POS, and a Weibo fan who once left the same phone in a lead.
        member = uow.session.merge(Member(card_no="C0001", phone=PHONE))
        weibo_fan = uow.customers.add(models.Customer())
        uow.flush()
        uow.identities.add(ChannelIdentity(customer_id=weibo_fan.id, channel="weibo", account="brand",
                                           external_id="weibo-42"))
        uow.session.add(Lead(customer_id=weibo_fan.id, name="王女士", phone=PHONE, interest="加盟",
                             source_channel="weibo"))
        uow.flush()
        membership.add_points(member.id, "earn", 300, "开卡礼", "welcome-C0001", uow)
        uow.commit()
        weibo_customer = weibo_fan.id
    assert "C0001" in bind(user, codes) and "300" in user.says("积分")
    wechat_customer = customer_of(runtime, user.openid)
    identities = rows(runtime, ChannelIdentity, customer_id=wechat_customer)
    assert {i.channel for i in identities} == {"wechat", "weibo"}  # one customer, both channels
    [merge] = rows(runtime, CustomerMerge)
    assert merge.from_customer_id == weibo_customer and merge.into_customer_id == wechat_customer
    with runtime.uow() as uow:
        membership.unmerge(merge.id, uow)
        uow.commit()
    assert [i.channel for i in rows(runtime, ChannelIdentity, customer_id=weibo_customer)] == ["weibo"]
    assert rows(runtime, Lead)[0].customer_id == weibo_customer


def test_complaint_becomes_a_ticket_with_reference_and_sla(user, runtime) -> None:
    assert "订单号" in user.says("我要投诉，收到的杯子破损了")
    assert "订单号" in user.says("?!")  # not an order number: asked again
    assert "描述" in user.says("SO20261120-8831")
    reply = user.says("杯子外包装完好但是杯身有裂纹")
    [ticket] = rows(runtime, Ticket)
    today = datetime.now(timezone(timedelta(hours=8))).strftime("%Y%m%d")
    assert re.fullmatch(rf"T{today}-0001", ticket.reference)
    assert ticket.reference in reply and "4小时" in reply  # P3's first response
    assert (ticket.source, ticket.category, ticket.priority, ticket.order_no) == (
        "complaint", "quality", "P3", "SO20261120-8831")
    assert "破损" in ticket.description and "裂纹" in ticket.description
    created = ticket.created_at.replace(tzinfo=timezone.utc) if ticket.created_at.tzinfo is None else ticket.created_at
    due = ticket.first_response_due.replace(tzinfo=timezone.utc) if ticket.first_response_due.tzinfo is None \
        else ticket.first_response_due
    assert timedelta(minutes=239) < due - created <= timedelta(minutes=241)


def test_urgent_complaint_is_p1_and_references_count_up(user, client, runtime) -> None:
    user.says("投诉")
    user.says("无")
    assert "15分钟" in user.says("孩子吃了以后过敏住院了")
    other = WeChatUser(client, "oBob00000000000000000000001")
    other.says("投诉")
    other.says("物流三天没动，快递也不接电话，太慢了")  # long: taken as the description
    first, second = rows(runtime, Ticket)
    assert first.priority == "P1" and second.category == "delivery"
    assert int(second.reference[-4:]) == int(first.reference[-4:]) + 1


def test_lead_is_captured_with_source_keyword_and_campaign(user, runtime) -> None:
    user.event("subscribe", "qrscene_campaign2026")
    assert "称呼" in user.says("想咨询一下加盟")
    assert "手机号" in user.says("王先生")
    assert "格式不对" in user.says("1381234")
    assert "感兴趣" in user.says("13912345678")
    assert "感兴趣" in user.says("13912345679")  # the phone again: the newer one is kept
    assert "顾问" in user.says("想在杭州开一家店")
    [lead] = rows(runtime, Lead)
    assert (lead.name, lead.phone, lead.source_channel, lead.keyword, lead.campaign, lead.status) == (
        "王先生", "13912345679", "wechat", "加盟", "campaign2026", "new")
    assert "杭州" in lead.interest
    # The same phone again later: the lead is updated, not duplicated.
    user.says("批发价格多少")
    user.says("王先生")
    user.says("13912345679")
    user.says("批发 100 箱")
    assert len(rows(runtime, Lead)) == 1 and "100 箱" in rows(runtime, Lead)[0].interest


def test_handoff_bot_silent_then_resolve_and_csat(user, runtime) -> None:
    queued = user.says("转人工")
    [ticket] = rows(runtime, Ticket)
    assert ticket.source == "handoff" and ticket.status == models.OPEN and ticket.reference in queued
    assert user.says("有人吗？") == ""  # the bot stays quiet
    assert user.says("积分") == ""
    actions.agent_reply(runtime, ticket.id, "agent-7", "您好，我是客服小王")
    actions.resolve(runtime, ticket.id, "agent-7", complaint_level="minor", compensation="20元券")
    outbound = [m for m in rows(runtime, Message, direction="out") if m.delivery == models.QUEUED]
    assert [m.author for m in outbound] == ["agent:agent-7", "bot"]
    assert ticket.reference in outbound[1].text and "1-5" in outbound[1].text
    assert "1-5" in user.says("很好")  # not a score
    assert "还有什么想对我们说的" in user.says("5")
    assert "感谢" in user.says("客服很耐心")
    [ticket] = rows(runtime, Ticket)
    assert (ticket.status, ticket.csat_score, ticket.csat_comment) == (models.RESOLVED, 5, "客服很耐心")
    assert (ticket.complaint_level, ticket.compensation, ticket.assignee) == ("minor", "20元券", "agent-7")
    assert ticket.first_response_at is not None and ticket.csat_asked_at is not None
    assert "绑卡" in user.says("积分")  # the bot is back


def test_misses_offer_a_human_then_hand_off(user, runtime) -> None:
    assert "没听懂" in user.says("嗯嗯")
    assert "转接人工" in user.says("啊这")
    assert "转接人工客服" in user.says("哦")
    assert rows(runtime, Ticket)[0].source == "handoff"


def test_strong_negative_message_goes_to_a_human(user, runtime) -> None:
    assert "人工客服" in user.says("气死我了，再也不来了！！！")
    assert rows(runtime, Ticket)[0].source == "handoff"


def test_cancel_and_timeout_midway(user, runtime) -> None:
    user.says("加盟")
    assert "已取消" in user.says("算了")
    assert "您好" in user.says("你好")  # a fresh start
    assert "好的" in user.says("取消")  # nothing to cancel
    user.says("合作")
    conversation = rows(runtime, models.Conversation)[0].id
    with runtime.uow() as uow:
        state = services.conversation_state(conversation, uow)
        state["flow"]["at"] -= 3600  # the customer walked away an hour ago
        services.save_conversation_state(conversation, state, uow, ttl=7200)
        uow.commit()
    reply = user.says("几点开门")
    assert "超时" in reply and "10:00-22:00" in reply
    assert rows(runtime, Lead) == []


def test_bad_input_has_defined_answers(user, codes, runtime) -> None:
    assert "🙂🙂🙂" in user.says("🙂🙂🙂")  # echoed in the fallback
    long = user.says("我" * 10_000)  # cut before the rules; the second miss offers a human
    assert "人工" in long and len(long) < 200
    assert len(rows(runtime, Message, direction="in")[-1].text) == 10_000  # stored whole
    assert "只能看懂文字" in user.sends_image()
    user.says("绑卡")
    assert "需要文字" in user.sends_image() and "手机号" in user.sends_image()
    user.says(PHONE)
    first_code = codes.codes[PHONE]
    assert "138****9999" in user.says("13800009999")  # the phone answered again: a new code there
    assert "绑定成功" in user.says(codes.codes["13800009999"])
    assert rows(runtime, Member)[0].phone == "13800009999" and first_code


def test_a_failing_handler_answers_politely_and_writes_nothing(user, runtime, monkeypatch, caplog) -> None:
    from bot import flows

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in a flow")

    user.says("投诉")
    user.says("无")
    monkeypatch.setattr(flows.services, "open_ticket", broken)
    with caplog.at_level(logging.ERROR):
        assert "系统繁忙" in user.says("东西坏了")
    assert "conversation" in caplog.text and "bug in a flow" in caplog.text
    assert rows(runtime, Ticket) == []
    assert rows(runtime, Message, direction="in")[-1].text == "东西坏了"  # the message is kept


def test_unsubscribe_and_resubscribe_restart_the_conversation(user, runtime) -> None:
    user.says("加盟")
    user.event("unsubscribe")
    assert "欢迎关注" in user.event("subscribe")
    assert "没听懂" in user.says("王先生") or "您好" in user.says("你好")
    with runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Lead)) == 0
