"""Scenarios of issue 3, told through the real WeChat webhook (signed pushes), then checked in the store."""
from __future__ import annotations

import itertools
import logging
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, func, select

from bot.otp import MemoryCodeSender
from channels.wechat_push import WeChatServer, event_xml, text_xml
from crm_store import membership, models, services
from crm_store.models import ChannelIdentity, CustomerMerge, Lead, Member, Message, Ticket
from tests.conftest import ACCOUNT, APP_ID, TOKEN, fixture_xml
from workers import jobs

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
    runtime.router.codes.sender = runtime.code_sender  # the app built its router already
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


def test_the_code_is_sent_after_the_message_has_landed(client, runtime, database_url) -> None:
    """The one-time-code sender is an outside service: it runs once the webhook's transaction has
    committed. Seen from another connection, the customer's message is already stored."""
    observer = create_engine(database_url)
    stored_when_sent: list[int] = []

    class ObservingSender(MemoryCodeSender):
        def send(self, phone: str, code: str) -> None:
            with observer.connect() as connection:
                stored_when_sent.append(connection.scalar(
                    select(func.count()).select_from(Message).where(Message.text == phone)))
            super().send(phone, code)

    runtime.router.codes.sender = sender = ObservingSender()
    try:
        user = WeChatUser(client, "oObserved00000000000000001")
        user.says("绑卡")
        assert "138****5678" in user.says(PHONE)
        assert stored_when_sent == [1] and PHONE in sender.codes
    finally:
        observer.dispose()


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
    reply = user.says("我要投诉，收到的杯子破损了")  # the problem is said: the ticket opens at once
    [ticket] = rows(runtime, Ticket)
    today = datetime.now(timezone(timedelta(hours=8))).strftime("%Y%m%d")
    assert re.fullmatch(rf"T{today}-0001", ticket.reference)
    assert ticket.reference in reply and "4小时" in reply and "订单号" in reply  # P3's first response
    assert "订单号" in user.says("单号 12345")  # not a form the brand issues: asked again
    assert "SO20261120-8831" in user.says("SO20261120-8831")
    [ticket] = rows(runtime, Ticket)
    assert (ticket.source, ticket.category, ticket.priority, ticket.order_no) == (
        "complaint", "quality", "P3", "SO20261120-8831")
    assert ticket.description == "我要投诉，收到的杯子破损了"  # the customer's own words, not asked again
    created = ticket.created_at.replace(tzinfo=timezone.utc) if ticket.created_at.tzinfo is None else ticket.created_at
    due = ticket.first_response_due.replace(tzinfo=timezone.utc) if ticket.first_response_due.tzinfo is None \
        else ticket.first_response_due
    assert timedelta(minutes=239) < due - created <= timedelta(minutes=241)


@pytest.mark.parametrize("words, category", [
    ("我昨天买的奶茶有异物", "foreign_object"),
    ("奶茶里喝出一根头发，恶心死了", "foreign_object"),
    ("外卖送到的时候洒了一袋子，杯子都漏了", "delivery"),
    ("退款申请一周了钱还没到账", "refund"),
    ("点的燕麦奶给我做成了牛奶", "wrong_order"),
    ("万达店那个店员对我翻白眼，爱答不理的", "service"),
    ("结账的时候比标价多收了我5块钱", "price"),
])
def test_complaints_in_any_words_open_a_ticket_with_their_description(user, runtime, words, category) -> None:
    reply = user.says(words)
    [ticket] = rows(runtime, Ticket)
    assert ticket.reference in reply and ticket.source == "complaint"
    assert (ticket.description, ticket.category) == (words, category)


@pytest.mark.parametrize("words", [
    "牛奶是酸的，孩子喝了吐了",
    "喝完你们的咖啡全家拉肚子，现在在医院",
    "蛋糕里有坚果没标注，我过敏起疹子了",
    "再不给我处理我就打12315了，头发都喝到嘴里了",
    "this coffee made me sick, my lawyer will contact you",
])
def test_food_safety_and_legal_threats_are_top_priority(user, runtime, words) -> None:
    reply = user.says(words)
    [ticket] = rows(runtime, Ticket)
    assert ticket.priority == "P1" and ticket.category in ("food_safety", "legal_threat")
    assert ticket.reference in reply and ("15分钟" in reply or "15 minutes" in reply)


def test_order_number_written_anywhere_is_taken_and_not_asked_for(user, runtime) -> None:
    reply = user.says("订单号：202611271530123456，两杯奶茶都少了珍珠")
    [ticket] = rows(runtime, Ticket)
    assert ticket.order_no == "202611271530123456" and "订单号" not in reply
    assert "订单号" not in user.says("好的谢谢")  # the flow is over: nothing more is asked
    assert len(rows(runtime, Ticket)) == 1


def test_asking_to_complain_asks_what_happened_then_the_order(user, runtime) -> None:
    assert "描述" in user.says("投诉")
    reply = user.says("冷萃今天是温的，冰块都化完了")
    [ticket] = rows(runtime, Ticket)
    assert ticket.description == "冷萃今天是温的，冰块都化完了" and "订单号" in reply
    assert "工单" in user.says("无")
    assert rows(runtime, Ticket)[0].order_no is None


def test_urgent_complaint_is_p1_and_references_count_up(user, client, runtime) -> None:
    user.says("投诉")
    assert "15分钟" in user.says("孩子吃了以后过敏住院了")
    other = WeChatUser(client, "oBob00000000000000000000001")
    other.says("物流三天没动，快递也不接电话，太慢了")
    first, second = rows(runtime, Ticket)
    assert first.priority == "P1" and first.category == "food_safety" and second.category == "delivery"
    assert int(second.reference[-4:]) == int(first.reference[-4:]) + 1


def test_lead_is_captured_with_source_keyword_and_campaign(user, runtime) -> None:
    user.event("subscribe", "qrscene_campaign2026")
    assert "称呼" in user.says("想咨询一下加盟")
    assert "称呼" in user.says("我想问一下要多少钱")  # a sentence is not a name
    assert "手机号" in user.says("王先生")
    assert "格式不对" in user.says("1381234")
    assert "139****5679" in user.says("13912345679")
    [lead] = rows(runtime, Lead)
    assert (lead.name, lead.phone, lead.source_channel, lead.keyword, lead.campaign, lead.status) == (
        "王先生", "13912345679", "wechat", "加盟", "campaign2026", "new")
    assert "加盟" in lead.interest
    # The same customer and phone again later: the lead is updated, not duplicated.
    assert "顾问" in user.says("我是王先生，电话13912345679，想批发100箱")
    assert len(rows(runtime, Lead)) == 1 and "100箱" in rows(runtime, Lead)[0].interest


def test_several_slots_in_one_message_are_all_taken(user, runtime) -> None:
    reply = user.says("我姓李，手机13912345678，想谈谈加盟")
    assert "顾问" in reply and "139****5678" in reply
    [lead] = rows(runtime, Lead)
    assert (lead.name, lead.phone, lead.keyword) == ("李", "13912345678", "加盟")


def test_another_customers_lead_is_linked_not_merged(user, client, runtime) -> None:
    user.says("我叫王芳，13912345678，公司年会要订80杯")
    other = WeChatUser(client, "oBob00000000000000000000001")
    other.says("我叫王芳，13912345678，想加盟")
    first, second = rows(runtime, Lead)
    assert first.customer_id != second.customer_id and second.same_phone_as_id == first.id
    assert "加盟" not in first.interest  # nothing written into another customer's lead


def test_a_price_question_is_answered_not_made_a_lead(user, runtime) -> None:
    reply = user.says("你们家拿铁多少钱一杯")
    assert "元" in reply or "¥" in reply
    assert rows(runtime, Lead) == []


def test_handoff_tells_ticket_wait_and_cancel_then_acknowledges_at_most_once(user, runtime) -> None:
    queued = user.says("转人工")
    [ticket] = rows(runtime, Ticket)
    assert ticket.source == "handoff" and ticket.status == models.OPEN
    assert ticket.reference in queued and "小时" in queued and "取消" in queued
    assert user.says("有人吗？") == ""  # acknowledged already, within the interval
    conversation = rows(runtime, models.Conversation)[0].id
    with runtime.uow() as uow:
        state = services.conversation_state(conversation, uow)
        state["ack_at"] -= 3600  # an hour of waiting
        services.save_conversation_state(conversation, state, uow, ttl=7200)
        uow.commit()
    waiting = user.says("还要等多久")
    assert ticket.reference in waiting and "请稍候" in waiting
    assert user.says("快点") == ""
    assert ticket.reference in user.says("取消")
    assert rows(runtime, Ticket)[0].status == models.CANCELLED
    assert "绑卡" in user.says("积分")  # the bot answers again


def test_praise_of_the_staff_is_praise_not_a_handoff(user, runtime) -> None:
    assert "认可" in user.says("谢谢刚才那位客服，耐心又专业")
    assert rows(runtime, Ticket) == []


def test_handoff_bot_silent_then_resolve_and_csat(user, runtime) -> None:
    queued = user.says("人工")
    [ticket] = rows(runtime, Ticket)
    assert ticket.source == "handoff" and ticket.status == models.OPEN and ticket.reference in queued
    assert user.says("积分") == ""  # the agent answers, not the bot
    with runtime.uow() as uow:  # what the console and the API do
        replied = services.reply_to_ticket(ticket.id, "agent-7", "您好，我是客服小王", uow)
        uow.commit()
    jobs.send_soon(runtime, replied)
    with runtime.uow() as uow:
        resolved = services.resolve_ticket(ticket.id, "agent-7", uow, complaint_level="minor", compensation="20元券")
        asked = services.ask_for_rating(resolved, runtime.content, uow, runtime.settings.conversation_ttl)
        uow.commit()
    jobs.send_soon(runtime, asked)
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


def test_a_numbered_choice_continues_with_the_message_asked_about(user, runtime) -> None:
    user.says("你好")
    conversation = rows(runtime, models.Conversation)[0].id
    with runtime.uow() as uow:  # the bot asked "您是想 1 投诉反馈 2 咨询问题 3 转人工？" about this message
        services.save_conversation_state(conversation, {"choices": {
            "text": "上次买的东西不太对劲", "lang": "zh", "options": ["complaint", "faq", "human"]}}, uow, ttl=600)
        uow.commit()
    reply = user.says("1")
    [ticket] = rows(runtime, Ticket)
    assert ticket.description == "上次买的东西不太对劲" and ticket.reference in reply


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


def test_a_question_mid_flow_is_answered_and_the_prompt_repeated(user, codes, runtime) -> None:
    assert "手机号" in user.says("绑卡")
    reply = user.says("你们几点开门呀？")
    assert "10:00-22:00" in reply and "手机号" in reply
    reply = user.says("我的奶茶里有头发！")  # a new subject: the flow is left for it
    assert rows(runtime, Ticket)[0].category == "foreign_object" and "工单" in reply
    assert "已取消" in user.says("取消")  # 取消 works in the complaint's order step too


def test_english_is_understood_and_answered_in_english(user, runtime) -> None:
    assert "10:00-22:00" in user.says("what time do you open?")
    reply = user.says("my iced latte arrived warm and half spilled")
    [ticket] = rows(runtime, Ticket)
    assert ticket.reference in reply and "sorry" in reply.lower()
    assert "bind card" in user.says("how many points do I have")


def test_bad_input_has_defined_answers(user, codes, runtime) -> None:
    assert "🙂🙂🙂" not in user.says("🙂🙂🙂")
    long = user.says("我" * 10_000)  # cut before the rules
    assert len(long) < 300
    assert len(rows(runtime, Message, direction="in")[-1].text) == 10_000  # stored whole
    assert "只能看懂文字" in user.sends_image()
    user.says("绑卡")
    assert "需要文字" in user.sends_image() and "手机号" in user.sends_image()
    user.says(PHONE)
    first_code = codes.codes[PHONE]
    assert "138****9999" in user.says("13800009999")  # the phone answered again: a new code there
    assert "绑定成功" in user.says(codes.codes["13800009999"])
    assert rows(runtime, Member)[0].phone == "13800009999" and first_code
    assert "<script>" not in user.says("<script>alert(1)</script> 你好")  # never echoed


def test_a_failing_handler_answers_politely_and_writes_nothing(user, runtime, monkeypatch, caplog) -> None:
    from bot import store

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in a flow")

    monkeypatch.setattr(store.services, "open_ticket", broken)
    with caplog.at_level(logging.ERROR):
        assert "系统繁忙" in user.says("东西坏了，杯子也裂了")
    assert "conversation" in caplog.text and "bug in a flow" in caplog.text
    assert rows(runtime, Ticket) == []
    assert rows(runtime, Message, direction="in")[-1].text == "东西坏了，杯子也裂了"  # the message is kept


def test_unsubscribe_and_resubscribe_restart_the_conversation(user, runtime) -> None:
    user.says("加盟")
    user.event("unsubscribe")
    assert "欢迎关注" in user.event("subscribe")
    assert "顾问" not in user.says("王先生")
    with runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Lead)) == 0


def test_the_models_read_a_message_before_its_transaction(user, runtime, monkeypatch) -> None:
    """On SQLite the transaction holds the store's write lock: the models must not run under it."""
    from bot import router as router_module

    open_units: list[int] = []
    read_while_open: list[bool] = []
    real_uow, real_from_models = runtime.uow, router_module.from_models

    class Tracked:
        def __enter__(self):  # type: ignore[no-untyped-def]
            open_units.append(1)
            self.uow = real_uow()
            return self.uow.__enter__()

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            open_units.pop()
            return self.uow.__exit__(*exc)

    def reading(*args, **kwargs):  # type: ignore[no-untyped-def]
        read_while_open.append(bool(open_units))
        return real_from_models(*args, **kwargs)

    monkeypatch.setattr(runtime, "uow", Tracked)
    monkeypatch.setattr(router_module, "from_models", reading)
    assert "工单" in user.says("奶茶里有根头发，太恶心了")
    assert read_while_open == [False]
