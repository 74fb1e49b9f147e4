"""The router on a FakeUnitOfWork: understanding, decisions and flows, table-driven over the ways
customers really write. No database, no Redis server (fakeredis for one-time codes)."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone

import fakeredis
import pytest

from bot.handlers import default_actions
from bot.otp import MemoryCodeSender, OneTimeCodes
from bot.route import route, router_for
from bot.router import Router
from bot.understanding import asks, from_models
from channels import base
from channels.base import InboundMessage
from config.content import load_content
from crm_store.services import RecordedInbound
from nlp import analysis
from tests.fakes.bot_store import FakeUnitOfWork

CONTENT = load_content()
analysis.load(CONTENT.rules.brand_words)
ROUTER = router_for(CONTENT)
_ids = itertools.count(1)


class Chat:
    """One customer talking to the router; the store is a FakeUnitOfWork."""

    def __init__(self, clock: list[float] | None = None) -> None:
        self.store = FakeUnitOfWork()
        self.sent = MemoryCodeSender()
        self.clock = clock or [1_800_000_000.0]
        codes = OneTimeCodes(fakeredis.FakeRedis(), "secret", self.sent, 300, 3)
        self.router = Router(default_actions(), CONTENT, codes, state_ttl=1800, clock=lambda: self.clock[0])

    def _send(self, kind: str, text: str = "", **attributes: str) -> str:
        msg = InboundMessage("wechat", "gh_test", "oUser", f"m{next(_ids)}", kind, datetime.now(timezone.utc), text,
                             attributes=attributes)
        recorded = RecordedInbound(1, 1, 1, False, agent_owned=self.store.waiting_handoff(1) is not None,
                                   state=self.store.state(1))
        reply = self.router.answer(msg, recorded, self.store)
        self.store.commit()
        return reply

    def says(self, text: str) -> str:
        return self._send(base.TEXT, text)

    def clicks(self, key: str) -> str:
        return self._send(base.MENU_CLICK, key=key)

    @property
    def state(self) -> dict:
        return dict(self.store.state(1))


def action(text: str) -> str:
    return route(text, ROUTER)["action"]


# -- understanding: exact overrides, then the models -------------------------------------------

@pytest.mark.parametrize("text, request_action", [
    ("积分", "points_balance"), ("积分！", "points_balance"), ("积分明细", "points_history"),
    ("绑卡", "member_bind"), ("人工", "handoff"), ("人工人工人工", "handoff"), ("转人工！！", "handoff"),
    ("取消", "nothing_to_cancel"), ("算了吧", "nothing_to_cancel"), ("human", "handoff"), ("cancel", "nothing_to_cancel"),
    ("等级", "member_level"), ("加盟", "lead"),
])
def test_short_exact_commands_are_overrides(text: str, request_action: str) -> None:
    routed = route(text, ROUTER)
    assert routed["action"] == request_action and routed["confidence"] == 1.0


def test_menu_keys_are_overrides() -> None:
    chat = Chat()
    assert "绑卡" in chat.clicks("MENU_POINTS")  # not a member yet
    assert "手机号" in chat.clicks("MENU_BIND")


@pytest.mark.parametrize("text", [
    "我昨天买的奶茶有异物", "牛奶是酸的，孩子喝了吐了", "外卖洒了一半，袋子里全是奶茶", "等了一个半小时外卖还没到",
    "退款都一个礼拜了还没到账", "我点的少冰给我做成了多冰", "你们万达店的店员态度也太差了吧", "结账比标价多收了三块",
    "三明治里吃出一根头发", "喝完就拉肚子了", "杯盖没盖好漏了一路", "咖啡是苦的发酸，跟平时完全不一样",
    "The milk in my latte was sour", "my order arrived an hour late and cold",
])
def test_complaints_in_customers_words_start_intake(text: str) -> None:
    assert action(text) in ("complaint", "handoff"), route(text, ROUTER)


@pytest.mark.parametrize("text, expected", [
    ("你们几点开门", "faq"), ("周末营业到几点啊", "faq"), ("能开发票吗", "faq"), ("外卖能送到滨江吗", "faq"),
    ("有停车的地方吗", "faq"), ("拿铁多少钱一杯", "faq"), ("What time do you close?", "faq"),
    ("我还有多少积分", "points_balance"), ("我现在是什么等级的会员", "member_level"),
    ("怎么绑定会员卡", "member_bind"), ("帮我转个真人客服", "handoff"),
    ("公司团建想订60杯，能便宜点吗", "lead"), ("想了解一下加盟条件", "lead"),
    ("谢谢刚才那位客服，耐心又专业", "praise"), ("你们的新品太好喝了！", "praise"),
    ("你好", "greeting"), ("在吗", "greeting"),
])
def test_each_request_in_everyday_words(text: str, expected: str) -> None:
    assert action(text) == expected, route(text, ROUTER)


@pytest.mark.parametrize("text, answer", [("发货时间一般是多久", "48 小时内发货"), ("多长时间能发货啊", "48 小时内发货"),
                                          ("你们门店一般几点关门", "10:00-22:00")])
def test_a_question_word_of_the_same_meaning_finds_the_entry(text: str, answer: str) -> None:
    # 多久 / 多长时间 / 什么时候 / 几点 all ask when (nlp.faq's question words of one meaning).
    assert answer in Chat().says(text)


@pytest.mark.parametrize("text", ["退款多久到账", "订单怎么取消", "东西落在店里了怎么办", "礼品卡怎么用",
                                  "小程序登录不了怎么办"])
def test_a_calm_question_the_faq_answers_is_answered_not_taken_as_a_request(text: str) -> None:
    # The models read these as complaints or card binding; the words of a question and a sure
    # FAQ match say otherwise.
    assert action(text) == "faq"


@pytest.mark.parametrize("text", ["退款多久能到账啊，等了一周了还没到", "我的奶茶里有头发怎么办", "how many points do I have?",
                                  "我的积分还剩多少", "帮我查一下积分", "积分", "我积分够换一杯了吗？刚看好像是980分",
                                  "where did my points go? had 2400 yesterday, now 400"])
def test_a_problem_or_ones_own_account_is_not_answered_from_the_faq(text: str) -> None:
    assert action(text) in ("complaint", "points_balance", "points_history")


@pytest.mark.parametrize("text, answer", [("积分会过期吗", "次年 12 月 31 日"), ("积分能换什么", "积分商城"),
                                          ("多少积分能换一杯咖啡", "600 积分"),
                                          ("我的积分什么时候过期", "次年 12 月 31 日"), ("do my points expire?", "following calendar year")])
def test_how_points_work_is_answered_from_the_faq_not_with_the_balance(text: str, answer: str) -> None:
    # The models read any points question as the balance; without words asking for one's own
    # figure (多少, 查, how many), it asks how points work.
    assert action(text) == "faq", route(text, ROUTER)
    assert answer in Chat().says(text)


@pytest.mark.parametrize("text, answer", [("会员等级怎么升级，金卡有什么权益", "成长值"), ("金卡和银卡有啥区别", "金卡会员"),
                                          ("等级会掉吗", "等级"), ("会员有几个等级", "四个等级"),
                                          ("what are the benefits of gold?", "Gold")])
def test_how_levels_work_is_answered_from_the_faq_not_with_ones_own_level(text: str, answer: str) -> None:
    # A customer who is not a member yet would be told to bind a card first: the question is
    # about the levels, not their own.
    assert action(text) == "faq", route(text, ROUTER)
    assert answer in Chat().says(text)


@pytest.mark.parametrize("text", ["我现在是什么等级", "查一下我的会员等级", "我还差多少能升金卡", "我是金卡吗", "what tier am i?",
                                  "how far am i from gold", "为啥我被降级了"])
def test_ones_own_level_is_the_level_action(text: str) -> None:
    assert action(text) == "member_level", route(text, ROUTER)


@pytest.mark.parametrize("text", ["😀😀😀", "[微笑]", "", "我" * 2000, "<b>你好</b><script>x</script>",
                                  "hello 我想问下 points 怎么查", "\x00\x07控制字符", "？？？"])
def test_any_text_is_routed_without_crashing(text: str) -> None:
    routed = route(text, ROUTER)
    assert routed["action"] in default_actions() and 0.0 <= routed["confidence"] <= 1.0


# -- unsure: ask with choices, and the answer continues ----------------------------------------

def test_low_confidence_asks_with_numbered_choices_and_a_number_continues() -> None:
    chat = Chat()
    chat.router.decide_by_models = lambda u: "clarify"  # type: ignore[method-assign]
    chat.router.choices = lambda u: ["faq", "complaint", "human"]  # type: ignore[method-assign]
    reply = chat.says("那个事情你们到底管不管")
    assert reply == "您是想 1 咨询问题 2 投诉反馈 3 转人工？回复数字即可。"
    reply = chat.says("2")
    [ticket] = chat.store.tickets
    assert ticket.description == "那个事情你们到底管不管" and ticket.reference in reply


def test_real_choices_are_two_or_three_requests_ending_with_a_human() -> None:
    understood = from_models("那个事情你们到底管不管", "zh", CONTENT)
    options = ROUTER.choices(understood)
    assert 2 <= len(options) <= 3 and options[-1] == "human"
    assert not {"chitchat", "praise"} & set(options)


def test_a_choice_by_words_continues_too() -> None:
    chat = Chat()
    chat.store.states[1] = {"choices": {"text": "上次的事", "lang": "zh", "options": ["complaint", "faq", "human"]}}
    assert "工单" in chat.says("转人工")
    assert chat.store.tickets[0].source == "handoff"


def test_choices_last_one_message() -> None:
    chat = Chat()
    chat.store.states[1] = {"choices": {"text": "上次的事", "lang": "zh", "options": ["complaint", "faq", "human"]}}
    chat.says("你好")
    assert "choices" not in chat.state and chat.store.tickets == []


# -- the fallback never echoes, offers what exists, then a human --------------------------------

def test_misses_offer_choices_then_a_human_then_hand_off() -> None:
    chat = Chat()
    chat.router.decide_by_models = lambda u: "fallback"  # type: ignore[method-assign]
    first = chat.says("嗯嗯啊啊哦哦")
    assert "嗯嗯" not in first and "1. 查询积分" in first and "6. 转人工" in first  # never echoed
    assert "转接人工" in chat.says("哦哦")
    assert "工单" in chat.says("啊啊") and chat.store.tickets[0].source == "handoff"


def test_a_fallback_choice_by_number_works() -> None:
    chat = Chat()
    chat.router.decide_by_models = lambda u: "fallback"  # type: ignore[method-assign]
    chat.says("嗯嗯啊啊")
    assert "绑卡" in chat.says("1")  # 查询积分, not a member yet


# -- complaint intake ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, order_no", [
    ("订单号：202611271530123456，奶茶里有头发", "202611271530123456"),
    ("单号 SO20261120-8831 杯子到手就是裂的", "SO20261120-8831"),
    ("202611271530123456 这单少了一杯", "202611271530123456"),
])
def test_complaint_with_its_order_number_asks_nothing_more(text: str, order_no: str) -> None:
    chat = Chat()
    reply = chat.says(text)
    [ticket] = chat.store.tickets
    assert (ticket.description, ticket.order_no) == (text, order_no)
    assert ticket.reference in reply and "订单号" not in reply and "flow" not in chat.state


def test_complaint_without_order_asks_only_for_the_order_and_takes_more_detail() -> None:
    chat = Chat()
    assert "订单号" in chat.says("奶茶里面有根头发，恶心死了")
    assert "订单号" in chat.says("订单号 12345")  # a form the brand does not issue
    assert "补充" in chat.says("而且店员还不让我退")  # more about the problem goes on the ticket
    [ticket] = chat.store.tickets
    assert "店员还不让我退" in ticket.description and ticket.order_no is None


def test_the_same_slot_answered_twice_keeps_the_newest() -> None:
    chat = Chat()
    chat.says("加盟")
    chat.says("13912345678")
    chat.says("13912345679")  # the phone again, before the name: the newer one is kept
    assert "顾问" in chat.says("王先生")
    assert chat.store.leads[0].phone == "13912345679"


@pytest.mark.parametrize("text, question", [("开了袋的豆子能放冰箱嘛", True), ("券还能再用不", True), ("是不是过期了", True),
                                            ("好嘛", False), ("我不要了", False), ("你们这服务嘛，一般般", False)])
def test_questions_end_with_ma_or_bu_after_a_verb_that_asks(text: str, question: bool) -> None:
    assert asks(text) is question


def test_an_allergy_question_ending_in_ma_is_answered_not_filed_as_p1() -> None:
    assert action("珍珠里面有小麦嘛 我麸质过敏") == "faq"


@pytest.mark.parametrize("text", ["我要去市场监管局举报你们", "昨天那单CTH-0611-2290到现在还没退回来", "我的奶茶里有头发怎么办",
                                  "杯子里有根头发，what should I do"])
def test_a_problem_stated_plainly_or_with_what_now_is_a_complaint(text: str) -> None:
    # Models unsure between a person, small talk and a question: the problem's words decide.
    assert action(text) == "complaint", route(text, ROUTER)


@pytest.mark.parametrize("text", ["牛奶是酸的，孩子喝了吐了", "喝完肚子疼了一晚上", "我对坚果过敏，你们没写清楚",
                                  "再不处理我就打12315", "我已经报警了", "律师函等着吧，杯子里有玻璃渣",
                                  "我上周在你们万达店买的杨枝甘露，喝完肚子一直疼，拉了两天", "昨天吃了你们的蛋糕今天身上起了好多红疹",
                                  "my son drank your smoothie and it made him really sick"])
def test_food_safety_illness_allergy_and_legal_threats_are_p1(text: str) -> None:
    chat = Chat()
    reply = chat.says(text)
    [ticket] = chat.store.tickets
    assert ticket.priority == "P1" and ticket.category in ("food_safety", "legal_threat"), ticket
    assert "15分钟" in reply or "15 minutes" in reply


def test_an_urgent_complaint_takes_its_order_number_too() -> None:
    chat = Chat()
    first = chat.says("喝完肚子一直疼，拉了两天")
    [ticket] = chat.store.tickets
    assert ticket.priority == "P1" and "订单号" in first
    assert "20261128334455" in chat.says("订单号是 20261128334455")
    assert ticket.order_no == "20261128334455" and "flow" not in chat.state


def test_asking_to_complain_asks_what_happened() -> None:
    chat = Chat()
    assert "描述" in chat.says("我要投诉")
    assert "描述" in chat.says("？")  # not a description: asked again
    reply = chat.says("拿铁是凉的，还少了一根吸管")
    assert chat.store.tickets[0].description == "拿铁是凉的，还少了一根吸管" and "订单号" in reply


# -- flows do not trap -------------------------------------------------------------------------

@pytest.mark.parametrize("start", ["绑卡", "加盟", "我要投诉"])
def test_cancel_always_works(start: str) -> None:
    chat = Chat()
    chat.says(start)
    assert "flow" in chat.state
    assert "已取消" in chat.says("取消")
    assert "flow" not in chat.state


@pytest.mark.parametrize("start, prompt", [("绑卡", "手机号"), ("加盟", "称呼"), ("我要投诉", "描述")])
def test_a_question_mid_flow_is_answered_and_the_prompt_repeated(start: str, prompt: str) -> None:
    chat = Chat()
    chat.says(start)
    reply = chat.says("你们几点开门？")
    assert "10:00-22:00" in reply and prompt in reply and "flow" in chat.state


def test_a_new_subject_leaves_the_flow() -> None:
    chat = Chat()
    chat.says("加盟")
    reply = chat.says("我昨天的奶茶里有头发")
    assert "flow" not in chat.state or chat.state["flow"]["name"] == "complaint"
    assert chat.store.tickets and chat.store.tickets[0].category == "foreign_object" and "工单" in reply


def test_a_number_where_a_name_is_expected_is_not_a_name_but_a_phone_is_taken() -> None:
    chat = Chat()
    chat.says("加盟")
    assert "手机" not in chat.says("12345")  # neither a name nor a phone: asked again for the name
    assert "称呼" in chat.says("13912345678")  # a phone: taken, the name is still missing
    assert "顾问" in chat.says("王先生")
    [lead] = chat.store.leads
    assert (lead.name, lead.phone) == ("王先生", "13912345678")


def test_several_slots_in_one_message() -> None:
    chat = Chat()
    assert "顾问" in chat.says("我姓李，手机13912345678，想谈谈加盟")
    [lead] = chat.store.leads
    assert (lead.name, lead.phone, lead.keyword) == ("李", "13912345678", "加盟")
    assert "加盟" in lead.interest


def test_a_retail_price_question_is_answered_not_a_lead() -> None:
    chat = Chat()
    reply = chat.says("美式多少钱")
    assert "元" in reply and chat.store.leads == [] and "flow" not in chat.state


def test_binding_with_the_phone_in_the_first_message() -> None:
    chat = Chat()
    assert "138****5678" in chat.says("绑卡 13812345678")
    assert "绑定成功" in chat.says(chat.sent.codes["13812345678"])
    assert chat.store.members[1].phone == "13812345678"


# -- hand-off ---------------------------------------------------------------------------------

def test_handoff_then_one_acknowledgement_per_interval_then_cancel() -> None:
    clock = [1_800_000_000.0]
    chat = Chat(clock)
    queued = chat.says("人工")
    [ticket] = chat.store.tickets
    assert ticket.reference in queued and "4小时" in queued and "取消" in queued
    assert chat.says("在吗") == ""  # just told
    clock[0] += CONTENT.rules.thresholds["handoff_ack_seconds"] + 1
    assert ticket.reference in chat.says("还要等多久")
    assert chat.says("？") == ""
    assert "已取消转人工" in chat.says("取消")
    assert ticket.status == "cancelled"
    assert "绑卡" in chat.says("积分")


@pytest.mark.parametrize("ask", ["人工", "你们客服什么时候能回我", "I want to talk to a real person"])
def test_asking_for_a_person_with_a_complaint_open_adds_to_it_not_a_second_ticket(ask: str) -> None:
    chat = Chat()
    chat.says("昨天买的杨枝甘露喝出一根头发，太恶心了")
    [complaint] = chat.store.tickets
    answer = chat.says(ask)
    assert chat.store.tickets == [complaint] and complaint.reference in answer
    assert ("1小时" in answer or "1 hour" in answer) and "flow" not in chat.state  # the order question is dropped
    assert (ask in complaint.description) == (ask != "人工")  # the customer's words, not the command
    assert "绑卡" in chat.says("积分")  # and the bot still serves: no agent owns the conversation


@pytest.mark.parametrize("more", ["对，就是这个，今天又喝到一根，真的太恶心了", "都两天了还没人联系我，你们到底管不管",
                                  "The same thing happened again today, another hair in my drink"])
def test_another_complaint_while_one_is_open_goes_to_it_not_a_second_ticket(more: str) -> None:
    chat = Chat()
    chat.says("昨天买的杨枝甘露喝出一根头发，太恶心了")
    chat.says("无")  # no order number: the intake is over, the ticket is with staff
    [complaint] = chat.store.tickets
    answer = chat.says(more)
    assert chat.store.tickets == [complaint] and complaint.reference in answer
    assert more in complaint.description and "flow" not in chat.state


@pytest.mark.parametrize("ask", ["那多久能处理好啊", "还要等多久", "处理得怎么样了？", "有结果了吗", "any update on my case?",
                                 "how much longer do I have to wait?", "how long do I have to wait?"])
def test_asking_how_ones_case_is_going_gets_the_case_not_the_faq(ask: str) -> None:
    chat = Chat()
    chat.says("昨天买的杨枝甘露喝出一根头发，太恶心了")
    chat.says("无")
    [complaint] = chat.store.tickets
    answer = chat.says(ask)
    assert complaint.reference in answer and ("1小时" in answer or "1 hour" in answer), answer
    assert ask in complaint.description and chat.store.tickets == [complaint]


def test_the_same_words_with_no_case_open_are_a_question_like_any_other() -> None:
    chat = Chat()
    answer = chat.says("还要等多久")
    assert "工单" not in answer and not chat.store.tickets


def test_praise_is_not_a_handoff() -> None:
    chat = Chat()
    assert "认可" in chat.says("谢谢刚才那位客服，耐心又专业")
    assert chat.store.tickets == []


def test_an_angry_outburst_goes_to_a_human() -> None:
    chat = Chat()
    assert "人工" in chat.says("气死我了！！！垃圾！！！")
    assert chat.store.tickets[0].source == "handoff"


# -- English -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, part", [
    ("what time do you open?", "10:00-22:00"), ("how many points do I have", "bind card"),
    ("I want to talk to a real person", "agent"), ("my coffee was cold and the cup was leaking", "case"),
])
def test_english_gets_english_answers(text: str, part: str) -> None:
    assert part in Chat().says(text).lower()


def test_the_language_of_a_number_is_the_conversations() -> None:
    chat = Chat()
    chat.says("I want to bind my card")
    assert "code" in chat.says("13812345678").lower()


# -- every flow step: a question, a cancel, two intents in one message --------------------------

def _at_step(step: str) -> Chat:
    """A conversation waiting at ``step`` (flow name: step name)."""
    chat = Chat()
    opening = {"member_bind:phone": ["绑卡"], "member_bind:code": ["绑卡", "13812345678"],
               "complaint:description": ["我要投诉"], "complaint:order": ["奶茶里有根头发"],
               "lead:name": ["加盟"], "lead:phone": ["加盟", "王先生"], "lead:interest": []}[step]
    for text in opening:
        chat.says(text)
    if step == "lead:interest":  # a menu click starts a lead with nothing said about what they want
        chat.clicks("MENU_JOIN")
        chat.says("王先生")
        chat.says("13912345678")
    assert f"{chat.state['flow']['name']}:{chat.state['flow']['step']}" == step
    return chat


STEPS = ["member_bind:phone", "member_bind:code", "complaint:description", "complaint:order", "lead:name",
         "lead:phone", "lead:interest"]


@pytest.mark.parametrize("step", STEPS)
def test_a_question_in_every_step_is_answered_and_the_step_stays(step: str) -> None:
    chat = _at_step(step)
    reply = chat.says("请问你们几点开门？")
    assert "10:00-22:00" in reply
    assert f"{chat.state['flow']['name']}:{chat.state['flow']['step']}" == step


@pytest.mark.parametrize("step", STEPS)
def test_cancel_in_every_step(step: str) -> None:
    chat = _at_step(step)
    assert "已取消" in chat.says("取消")
    assert "flow" not in chat.state


@pytest.mark.parametrize("step", STEPS)
def test_a_human_in_every_step(step: str) -> None:
    chat = _at_step(step)
    before = [t.reference for t in chat.store.tickets if t.status in ("open", "claimed")]
    reply = chat.says("转人工")
    # A hand-off ticket, or the complaint this flow just opened (still with staff) takes it.
    assert chat.store.tickets[-1].reference in reply
    assert chat.store.tickets[-1].source == "handoff" or before == [chat.store.tickets[-1].reference]
    assert "flow" not in chat.state


def test_csat_steps_take_a_score_then_a_comment_and_a_command_leaves() -> None:
    from bot.router import start_csat
    chat = Chat()
    ticket = chat.store.open_ticket(1, 1, source="handoff", category="handoff", priority="P3",
                                    first_response_due=None, resolution_due=None, description="", order_no=None)
    ticket.status = "resolved"
    state: dict = {}
    start_csat(state, ticket.id, chat.clock[0])
    chat.store.states[1] = state
    assert "1-5" in chat.says("挺好的")  # not a score
    assert "还有什么" in chat.says("5分")
    assert "感谢" in chat.says("客服小王很耐心")
    assert (ticket.csat_score, ticket.csat_comment) == (5, "客服小王很耐心")


@pytest.mark.parametrize("text, expected", [
    ("你好，我想查一下我的积分", "points_balance"),
    ("奶茶里有头发！另外你们几点关门", "complaint"),
    ("谢谢你们，顺便问下怎么绑定会员卡", "member_bind"),
    ("在吗 想加盟 费用多少", "lead"),
])
def test_two_intents_in_one_message_take_the_request(text: str, expected: str) -> None:
    assert action(text) == expected, route(text, ROUTER)


def test_cancel_after_an_agent_claimed_the_handoff_keeps_it() -> None:
    chat = Chat()
    chat.says("人工")
    [ticket] = chat.store.tickets
    ticket.status = "claimed"
    reply = chat.says("取消")
    assert ticket.reference in reply and ticket.status == "claimed"
    assert chat.says("在吗") == ""  # just acknowledged: the agent answers
