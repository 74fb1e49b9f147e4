"""``crmbot demo``: a believable demo brand (茶咖坊) in the store, written through the real paths.

Customers talk to the brand's WeChat Official Account: every message is built as WeChat pushes it,
signed, parsed by the WeChat channel and handed to ``bot.inbox.receive``, as the webhook does. So
the router, its flows, tickets, leads, member binding and satisfaction answers happen exactly as
they would live. Staff work the tickets with the store's service functions (claim, reply, resolve,
ask for a rating), their messages are delivered through the outbox's own functions, the marketer
moves the leads along, and the shops' tills credit members' points through the points ledger.

People post about the brand on Weibo and Twitter, and the real listening worker
(``workers.listening.Listener``) polls them a few times a day from in-memory stand-ins of the two
platforms' clients: its analysis and rules store the mentions and make their tickets and leads,
and it takes the accounts' daily follower counts. Staff settle those tickets, the marketer
follows those leads up, and the Official Account's followers are counted at each day's end.

Everything happens on a simulated clock over the last ``days`` days, in time order, ending now
(see ``SimulatedClock`` for why a clock rather than rewriting timestamps afterwards).
"""
from __future__ import annotations

import heapq
import random
import string
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import partial
from typing import Callable, Iterator, Sequence
from urllib.parse import parse_qsl

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute

from bot import flows
from bot.inbox import receive
from bot.otp import MemoryCodeSender
from bot.router import Router
from channels import twitter, weibo
from channels.base import COMMENT, POST, InboundMessage, Mention
from channels.wechat import NAME as WECHAT
from channels.wechat import WeChatChannel
from channels.wechat_push import WeChatServer, event_xml, text_xml
from crm_store import kpis, listening, membership, models, outbox, services, staff
from crm_store.models import (ChannelIdentity, FollowerSnapshot, Lead, Member, Message, PointsEntry, StaffUser, Ticket,
                              as_utc)
from crm_store.references import SHANGHAI
from crm_store.uow import UnitOfWork
from workers.listening import Listener
from workers.listening import rules as listening_rules
from workers.runtime import Runtime

# The Official Account the demo's customers write to: ``crmbot chat``'s default, so a presenter
# who chats with the running service lands in the same brand.
ACCOUNT = "gh_crmbotdemo"
# Demo customers' openids start with this: how a second run recognises the first one's data.
OPENID_PREFIX = "oDemo"
DEMO_PASSWORD = "chakafang-demo"
AGENTS = ("小王", "小李")
SUPERVISOR = "张主管"
MARKETER = "陈市场"
STAFF = ((AGENTS[0], models.AGENT), (AGENTS[1], models.AGENT), (SUPERVISOR, models.SUPERVISOR),
         (MARKETER, models.MARKETER))
WINDOW = timedelta(hours=48)  # WeChat's customer-service window after a customer's last message


class DemoExists(Exception):
    """The store holds demo data already; a second demo would tangle two histories in one."""


# --- the clock ------------------------------------------------------------------------------

class SimulatedClock:
    """The time the service reads while the demo runs.

    A clock rather than moving rows' timestamps back after each step: every row then carries the
    time the very code that writes it live gave it, and whatever *reads* the clock follows too:
    SLA due times, a conversation state's expiry (a flow left half-done last week is over), the
    flow timeout, the hand-off acknowledgement interval, the 30 minutes in which a rating answer
    lands, and the day in ticket references and card numbers. Rewriting rows afterwards would
    have to know every timestamp column, and would leave those readers on the real clock.

    The service reads the clock in three places, replaced while ``installed``: ``datetime.now``
    in ``crm_store.models`` (its ``utcnow``: column defaults and every service function), in
    ``bot.flows`` (a new ticket's SLA), and the router's injected ``clock`` (flow timeouts,
    acknowledgements).
    """

    def __init__(self, now: datetime) -> None:
        self.now = now

    def timestamp(self) -> float:
        return self.now.timestamp()

    @contextmanager
    def installed(self, router: Router) -> Iterator[None]:
        clock = self

        class SimulatedDatetime(datetime):
            @classmethod
            def now(cls, tz=None):  # type: ignore[no-untyped-def,override]
                return clock.now.astimezone(tz) if tz is not None else clock.now.astimezone().replace(tzinfo=None)

        readers = ((models, "datetime", SimulatedDatetime), (flows, "datetime", SimulatedDatetime),
                   (router, "clock", self.timestamp))
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in readers]
        try:
            for owner, name, value in readers:
                setattr(owner, name, value)
            yield
        finally:
            for owner, name, value in saved:
                setattr(owner, name, value)


# --- what customers and staff say -----------------------------------------------------------

STORES = ("西湖银泰店", "湖滨in77店", "杭州东站店", "万象城店", "徐家汇店", "新天地店", "静安寺店", "观前街店", "苏州中心店",
          "新街口店", "河西万达店")
DRINKS = ("珍珠奶茶", "杨枝甘露", "生椰拿铁", "桂花乌龙拿铁", "燕麦拿铁", "芝士莓莓", "茉莉奶绿", "抹茶拿铁", "黑糖波波",
          "冰美式")
DRINKS_EN = ("latte", "oat latte", "cold brew", "milk tea", "flat white", "matcha latte")
SCENES = ("store_xihu_yintai", "store_xujiahui", "cup_sleeve_nov", "autumn_osmanthus", "member_day_poster",
          "delivery_bag_card")
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
EN_NAMES = ("David Chen", "Emily Wang", "Michael Liu", "Sophie Zhang", "James Lin", "Grace Zhou")
PHONE_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156", "158",
                  "159", "166", "176", "177", "180", "181", "186", "187", "188", "189", "199")

GREETINGS = ("你好", "在吗", "哈喽", "早上好", "您好", "你好呀")
GREETINGS_EN = ("hello", "good morning")
THANKS = ("好的谢谢", "谢谢", "好的", "嗯嗯", "哈哈", "知道了")
THANKS_EN = ("thanks", "ok thank you")
FAQ = (
    "你们几点开门？", "今晚开到几点啊", "晚上几点关门", "国庆节门店正常开吗", "附近有门店吗", "门店地址发一下",
    "苏州有你们的店吗", "外卖能送多远", "点外送大概要等多久", "外卖起送价多少", "优惠券可以叠加吗",
    "坚果过敏的能喝吗", "你们的蛋糕含麸质吗", "乳糖不耐受有什么推荐", "怀孕可以喝咖啡吗", "有无糖的吗",
    "可以换燕麦奶吗", "门店有wifi吗", "怎么开发票", "发票抬头开错了怎么办", "拿铁多少钱一杯", "杨枝甘露多少钱",
    "有新品吗", "可以带宠物吗", "店里有插座吗？想办公", "能预约自提吗", "会员日是哪天", "生日有什么礼物吗",
    "可以用支付宝吗", "有低因咖啡吗", "一杯拿铁多少咖啡因",
    "自带杯有优惠吗", "可以提前订蛋糕吗", "咖啡豆怎么保存", "大杯是多少毫升", "饮品可以放多久", "附近好停车吗",
)
FAQ_EN = ("what time do you open?", "how far do you deliver", "do you have oat milk", "is there wifi in the store",
          "are you open on public holidays", "do you have decaf coffee", "can I pay with Alipay",
          "where is your nearest store")
PRAISE = ("今天的拿铁很好喝，店员小姐姐也很热情", "谢谢刚才那位客服，耐心又专业", "新品桂花乌龙太好喝了！",
          "你们的服务真不错，点赞", "{store}的店员特别贴心，下雨天还帮我套了袋子", "生椰拿铁yyds，每天一杯",
          "外卖送得很快，包装也很用心", "杨枝甘露料好足，好评")
PRAISE_EN = ("love the new cold brew, great job", "the staff at {store_en} were lovely today")
STORES_EN = ("the Xintiandi store", "the Jing'an store", "the West Lake store")
POINTS_ASKS = ("积分", "查积分", "我的积分还有多少", "积分明细", "我现在是什么等级", "会员等级", "积分怎么兑换")
POINTS_ASKS_EN = ("my points", "how many points do I have", "points history")
POINTS_MENU = ("MENU_POINTS", "MENU_HISTORY", "MENU_LEVEL")
BIND_ASKS = ("绑卡", "我想绑定会员卡", "绑定会员卡", "开卡")
HANDOFF_ASKS = ("转人工", "人工客服", "我要找真人", "客服", "人工")
HANDOFF_ASKS_EN = ("human", "agent", "real person")
CANCELS = ("算了", "不用了", "取消")
ORDER_NONE = ("没有", "无", "忘了", "找不到")
# While waiting for an agent, what the customer wants, and what the agent answers.
HANDOFF_QUESTIONS = (
    ("我想改一下订单的收货地址，订单号{order}", "您好，我是客服{agent}。已经帮您联系门店修改了收货地址，骑手会按新地址配送，请留意电话。"),
    ("昨天在{store}落了一把蓝色的伞，能帮忙找一下吗", "您好，我是客服{agent}。已联系{store}，伞找到了放在前台，您方便时报手机尾号领取即可。"),
    ("公司采购想开增值税专票，怎么弄", "您好，我是客服{agent}。专票请在小程序“我的-发票”里选择增值税专用发票，填写公司税号和开户行，3个工作日内开出。"),
    ("我的会员积分怎么少了一半", "您好，我是客服{agent}。查询到上月有一笔积分兑换了饮品券，券在“我的-卡券”里，还没有使用哦。"),
    ("小程序一直登录不了，验证码收不到", "您好，我是客服{agent}。已为您重置了登录状态，请退出小程序重新进入，验证码如仍收不到请检查是否被拦截。"),
    ("礼品卡余额怎么查不到", "您好，我是客服{agent}。礼品卡余额在小程序“我的-礼品卡”里查看，刚帮您核实余额为 86 元，可正常使用。"),
    ("想订20杯明天下午送到公司，能安排吗", "您好，我是客服{agent}。可以的，已为您登记明天下午3点送达，稍后门店会电话和您确认口味。"),
)
HANDOFF_QUESTIONS_EN = (
    ("I left my scarf at {store_en} yesterday",
     "Hi, this is {agent} from customer service. The store has your scarf at the counter; just give them the last "
     "digits of your phone."),
    ("can I change the delivery address of my order {order}?",
     "Hi, this is {agent}. Done: the rider will deliver to the new address and will call you on arrival."),
)


@dataclass(frozen=True)
class Complaint:
    """A complaint the way customers put it, with how staff answer and settle it."""

    text: str
    category: str
    urgent: bool = False  # food safety or a legal threat: the supervisor takes it


COMPLAINTS = (
    Complaint("{store}买的{drink}里有一根头发，恶心死了", "foreign_object"),
    Complaint("{drink}喝到一半发现里面有个塑料片，差点吞下去", "foreign_object"),
    Complaint("今天的{drink}里有只小虫子，你们后厨卫生怎么搞的", "foreign_object"),
    Complaint("我昨天买的奶茶里有异物，太恶心了", "foreign_object"),
    Complaint("今天买的{drink}是酸的，奶明显变质了", "food_safety", urgent=True),
    Complaint("{drink}喝起来一股怪味，像是奶坏了", "quality"),
    Complaint("冰美式一点冰都没有，化完了还很难喝", "quality"),
    Complaint("咖啡豆包装破损，豆子撒了一箱子", "quality"),
    Complaint("外卖等了{minutes}分钟才到，{drink}全凉了", "delivery"),
    Complaint("骑手送错地址了，到现在还没收到", "delivery"),
    Complaint("外卖送到的时候洒了一袋子，杯子都漏了", "delivery"),
    Complaint("点的燕麦奶给我做成了牛奶", "wrong_order"),
    Complaint("我点的是少冰，给我做成了多冰，还少了一杯", "wrong_order"),
    Complaint("{store}那个店员对我翻白眼，爱答不理的", "service"),
    Complaint("收银员态度很差，还骂人", "service"),
    Complaint("退款申请一周了钱还没到账", "refund"),
    Complaint("申请退款三天了还没到账，订单号 {order}", "refund"),
    Complaint("结账的时候比标价多收了我5块钱", "price"),
    Complaint("小程序支付失败但是钱扣了两次", "app"),
    Complaint("喝完你们的{drink}全家拉肚子，现在在医院", "food_safety", urgent=True),
    Complaint("蛋糕里有坚果没标注，孩子过敏起疹子了", "food_safety", urgent=True),
    Complaint("头发都喝到嘴里了，再不处理我就打12315了", "legal_threat", urgent=True),
    Complaint("今天在{store}点的{drink}，等了四十分钟才做好，中间也没人解释", "service"),
    Complaint("杯盖没盖好，一拿起来洒了我一身", "quality"),
    Complaint("{drink}的珍珠是硬的，像没煮熟一样", "quality"),
    Complaint("小票上写的大杯，给我的明明是中杯", "wrong_order"),
    Complaint("生日券明明还在有效期，店员说用不了", "price"),
    Complaint("外卖小哥把奶茶放在楼下就走了，也不打电话", "delivery"),
    Complaint("买的挂耳咖啡过期了两个月，你们还在卖", "food_safety", urgent=True),
    Complaint("奶盖里吃出一块碎玻璃，嘴都划破了", "foreign_object"),
    Complaint("会员价没抵扣，优惠券也没用上，多付了12块", "price"),
    Complaint("{store}地上全是水，我滑了一跤，也没人管", "service"),
    Complaint("芝士莓莓里的草莓是烂的，一股馊味", "food_safety", urgent=True),
    Complaint("说好的免配送费，结果还是收了5块", "price"),
    Complaint("点了两杯只做了一杯，打电话到店里也没人接", "wrong_order"),
)
COMPLAINTS_EN = (
    Complaint("the milk in my {drink_en} was sour", "quality"),
    Complaint("my order was wrong, I got a mocha instead of a flat white", "wrong_order"),
    Complaint("the delivery arrived {minutes} minutes late and everything was cold", "delivery"),
    Complaint("the staff at {store_en} was really rude to me", "service"),
    Complaint("the cup leaked all over my bag", "quality"),
    Complaint("I was charged twice for one order", "refund"),
    Complaint("found a hair in my drink, disgusting", "foreign_object"),
)
# Per category: the agent's first reply, the resolution's complaint level, compensation and note.
SETTLEMENTS = {
    "foreign_object": ("您好，我是客服{agent}。非常抱歉饮品里出现异物，我们已通知门店排查出品流程，这一单为您全额退款，"
                       "另送一张20元无门槛券。", "major", "全额退款+20元券", "门店已复盘出品流程，当班人员已培训"),
    "food_safety": ("您好，我是{agent}，负责食品安全问题。请您先就医并保留小票和剩余饮品，我们的食品安全专员今天内和您联系，"
                    "相关医疗费用由我们承担。", "critical", "全额退款+医疗费用报销", "同批次原料已下架送检"),
    "legal_threat": ("您好，我是{agent}。非常重视您反映的问题，我会亲自跟进，稍后给您打电话，这一单全额退款。",
                     "major", "全额退款+50元券", "主管电话致歉，客户接受处理"),
    "quality": ("您好，我是客服{agent}。很抱歉这次饮品品质没有达到标准，已为您办理退款，门店也会检查设备和原料。",
                "minor", "退款", "已反馈门店检查原料与设备"),
    "delivery": ("您好，我是客服{agent}。外卖给您带来不便非常抱歉，已联系配送平台核实，本单配送费退还并补一张免配送费券。",
                 "minor", "退配送费+免配送费券", "已向配送平台投诉"),
    "wrong_order": ("您好，我是客服{agent}。做错了饮品向您道歉，已为您重新下单一杯，半小时内送到，原订单退款。",
                    "minor", "重做+退款", "门店已核对订单备注流程"),
    "service": ("您好，我是客服{agent}。店员的服务态度问题我们已反馈给店长，会对当事店员进行培训和处理，给您添堵了。",
                "major", "20元券", "店长已约谈当事店员"),
    "refund": ("您好，我是客服{agent}。已为您加急处理退款，款项会在1-3个工作日原路退回，请留意账户。",
               "minor", None, "财务已加急"),
    "price": ("您好，我是客服{agent}。核实到结账时价格有误，多收的差价已退回您的支付账户。", "minor", "退差价",
              "收银系统价格已更正"),
    "app": ("您好，我是客服{agent}。重复扣款已核实，多扣的一笔会在24小时内原路退回。", "minor", "退回重复扣款",
            "已提交技术排查"),
    "other": ("您好，我是客服{agent}，看到您的反馈了，我们马上核实处理。", "minor", None, None),
}
SETTLEMENTS_EN = {
    "other": ("Hi, this is {agent} from customer service. We are very sorry about this; we have refunded the "
              "order and added a 20 RMB coupon to your account.", "minor", "refund + 20 RMB coupon", None),
}
CSAT_COMMENTS = {
    "good": ("处理很及时，谢谢{agent}", "态度很好，问题解决了", "补偿很有诚意", "很满意，下次还来"),
    "fair": ("还行吧，就是等得有点久", "处理了，但是希望别再出现"),
    "bad": ("等了太久了", "补偿太少了", "问题根本没解决", "再也不想来了"),
    "good_en": ("quick and friendly, thanks", "problem solved"),
    "bad_en": ("took far too long",),
}
# How one tells one's score: the score is the only digit in it (bot.flows reads it so).
SCORE_TEXTS = {5: ("5", "5分", "5 很满意", "五星好评 5"), 4: ("4", "4分", "4 很满意"), 3: ("3", "3 一般般"),
               2: ("2", "2分"), 1: ("1", "1 很不满意")}
LEADS = (
    "我想了解一下加盟", "你好，想咨询一下加盟需要多少钱", "想在{city}开一家你们的店，怎么加盟",
    "公司年会要订{cups}杯奶茶，能优惠吗", "我们公司下午茶想长期合作", "我是做批发的，想进你们的咖啡豆",
    "学校社团活动想团购{cups}杯，有团购价吗", "想做你们的渠道分销商",
)
LEADS_EN = ("interested in a franchise in {city_en}", "we need catering for a corporate event of {cups} people")
# A lead's way through the pipeline, by where it ends: the marketer's steps.
LEAD_PATHS = {"new": (), "contacted": ("contacted",), "qualified": ("contacted", "qualified"),
              "converted": ("contacted", "qualified", "converted"), "lost": ("contacted", "lost")}
CITIES = ("苏州", "无锡", "宁波", "合肥", "南京", "绍兴")
CITIES_EN = ("Suzhou", "Ningbo", "Hefei")


# --- the plan: what happens, when --------------------------------------------------------------

@dataclass(eq=False)
class DemoCustomer:
    """One made-up WeChat follower: their openid, language and mobile number."""

    index: int
    openid: str
    lang: str  # zh | en
    phone: str
    customer_id: int | None = None
    last_inbound: datetime | None = None


@dataclass(frozen=True)
class Line:
    """One push of a session: a text, an event, a photo or the one-time code the customer got."""

    offset: float  # seconds after the session starts
    kind: str  # text | code | wrong_code | image | subscribe | unsubscribe | click
    text: str = ""


@dataclass(eq=False)
class Event:
    """Something that happens to one customer at ``at``."""

    at: datetime
    customer: DemoCustomer


@dataclass(eq=False)
class Session(Event):
    """The customer writes a few messages in a row."""

    lines: tuple[Line, ...] = ()
    opens: str | None = None  # the key of the ticket this session opens
    rating_for: str | None = None  # an answer to this ticket's rating question: only if it was asked


@dataclass(eq=False)
class StaffStep(Event):
    """A staff member works a ticket: claim, reply or resolve (then the bot asks for a rating)."""

    ticket: str = ""
    action: str = ""  # claim | reply | resolve
    agent: str = ""
    text: str = ""
    complaint_level: str | None = None
    compensation: str | None = None
    points: int = 0  # compensation in points, for a member
    category: str | None = None  # the category staff settle on (the bot's may be "other")
    note: str | None = None


@dataclass(eq=False)
class Purchase(Event):
    """The shop's till credits (or a redemption debits) a member's points."""

    kind: str = "earn"
    points: int = 0
    reason: str = ""
    key: str = ""


@dataclass(eq=False)
class LeadStep(Event):
    """The marketer moves the customer's lead along its pipeline."""

    status: str = ""


class Planner:
    """Customers' stories over the window: sessions, staff work, purchases and lead follow-ups.

    Most stories are drawn at random from what a tea-and-coffee brand's WeChat sees; the first
    few customers play fixed showcase stories, so every ticket state is there even in a small demo.
    """

    def __init__(self, rng: random.Random, start: datetime, now: datetime) -> None:
        self.rng, self.start, self.now = rng, start, now
        self.at = start  # when the story being told begins
        self.phones: set[str] = set()
        self.openids: set[str] = set()
        self.tickets = 0

    # - customers -

    def customer(self, index: int) -> DemoCustomer:
        openid = ""
        while not openid or openid in self.openids:  # 28 characters, like WeChat's
            openid = OPENID_PREFIX + "".join(self.rng.choices(string.ascii_letters + string.digits + "-_", k=23))
        self.openids.add(openid)
        return DemoCustomer(index, openid, "en" if self.rng.random() < 0.06 else "zh", self.phone())

    def phone(self) -> str:
        phone = ""
        while not phone or phone in self.phones:
            phone = self.rng.choice(PHONE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
        self.phones.add(phone)
        return phone

    def plan(self, count: int) -> list[Event]:
        events: list[Event] = []
        for index in range(count):
            c = self.customer(index)
            stories = SHOWCASE[index](self, c) if index < len(SHOWCASE) else self.random_stories(c)
            events.extend(self.lay_out(c, stories))
        # Time order; a customer's own events keep their order (sorted() is stable).
        return sorted(events, key=lambda e: e.at)

    def random_stories(self, c: DemoCustomer) -> list[tuple[datetime, str, dict]]:
        """What this customer does, and about when: (time, story, options)."""
        r, span = self.rng, (self.now - self.start).total_seconds()
        stories: list[tuple[datetime, str, dict]] = []
        if r.random() < 0.55:  # followed the account before the window
            arrival = self.start
        else:  # a new follower, from a QR code or a search
            arrival = self.start + timedelta(seconds=span * r.random() * 0.98)
            stories.append((arrival, "subscribe", {}))

        def later(after: datetime = arrival) -> datetime:
            """Any time of the window, but not before ``after``: a time drawn before it falls
            soon after it instead (a new follower is busiest at first). So the days are about
            equally busy, however many followers joined when."""
            at = self.start + timedelta(seconds=span * r.random())
            if at < after:
                at = after + timedelta(hours=r.expovariate(1 / 18))
            return self.daytime(at)

        for _ in range(r.choice((0, 1, 1, 1, 2, 2, 3))):
            stories.append((later(), "faq", {}))
        if r.random() < 0.33:
            bound = later()
            stories.append((bound, "bind", {}))
            for _ in range(r.choice((0, 1, 1, 2, 3))):
                stories.append((later(bound), "points", {}))
        elif r.random() < 0.1:
            stories.append((later(), "points_stranger", {}))
        if r.random() < 0.16:
            stories.append((later(), "complaint", {}))
        if r.random() < 0.07:
            stories.append((later(), "handoff", {}))
        if r.random() < 0.035:
            stories.append((later(), "lead", {}))
        if r.random() < 0.07:
            stories.append((later(), "praise", {}))
        if r.random() < 0.12:
            stories.append((later(), "chat", {}))
        if not stories:  # everyone in the demo writes at least once
            stories.append((later(), "faq", {}))
        stories.sort(key=lambda story: story[0])
        if r.random() < 0.03:  # unfollows, after everything else (an unfollower cannot write)
            stories.append((max(later(), stories[-1][0] if stories else arrival), "unsubscribe", {}))
        return stories

    def daytime(self, at: datetime) -> datetime:
        """Customers write mostly by day: a time in the small hours moves to the morning, mostly."""
        local = at.astimezone(SHANGHAI)
        if 1 <= local.hour < 7 and self.rng.random() < 0.85:
            at += timedelta(hours=7 - local.hour, minutes=self.rng.randrange(0, 120))
        return min(at, self.now - timedelta(minutes=3))

    # - stories -

    def lay_out(self, c: DemoCustomer, stories: list[tuple[datetime, str, dict]]) -> list[Event]:
        """Each story's events, one after the other: a story starts after the one before has ended."""
        events: list[Event] = []
        cursor = self.start
        for at, story, options in stories:
            at = max(at, cursor)
            if at >= self.now - timedelta(minutes=2):
                break
            self.at = at
            made, end, stays_open = getattr(self, f"story_{story}")(c, at, **options)
            events.extend(made)
            cursor = end + timedelta(minutes=self.rng.randrange(5, 180))
            if stays_open:  # an agent holds the conversation, or will: the bot stays quiet till then
                break
        return events

    def session(self, c: DemoCustomer, at: datetime, *lines: tuple[str, str], **extra: str | None) -> Session:
        """A session of (kind, text) pushes, a few seconds to a minute or two apart."""
        offset, made = 0.0, []
        for kind, text in lines:
            made.append(Line(offset, kind, text))
            offset += self.rng.uniform(8, 90) + len(text) * 0.8
        return Session(at, c, tuple(made), **extra)

    def end_of(self, session: Session) -> datetime:
        return session.at + timedelta(seconds=session.lines[-1].offset if session.lines else 0)

    def pick(self, zh: Sequence[str], en: Sequence[str], c: DemoCustomer) -> str:
        return self.fill(self.rng.choice(en if c.lang == "en" and en else zh))

    def fill(self, text: str) -> str:
        return text.format(**self.values())

    def values(self) -> dict[str, object]:
        """A story's particulars: store, drink, order number ... (the agent's name is filled in
        once the agent is known)."""
        r = self.rng
        return {"store": r.choice(STORES), "drink": r.choice(DRINKS), "drink_en": r.choice(DRINKS_EN),
                "store_en": r.choice(STORES_EN), "minutes": r.choice((50, 70, 80, 90, 100)), "order": self.order_no(),
                "city": r.choice(CITIES), "city_en": r.choice(CITIES_EN), "cups": r.choice((20, 30, 50, 80, 120)),
                "agent": "{agent}"}

    def order_no(self) -> str:
        """An order number in one of the brand's forms (mini program, online shop, store receipt),
        of an order a day or two before the story."""
        r = self.rng
        day = (self.at - timedelta(hours=r.uniform(0.5, 48))).astimezone(SHANGHAI)
        form = r.random()
        if form < 0.6:
            return f"{day:%Y%m%d%H%M}{r.randrange(10**6):06d}"
        if form < 0.85:
            return f"SO{day:%Y%m%d}-{r.randrange(1000, 99999)}"
        return f"{r.choice(('LH', 'XT', 'GQ'))}{r.randrange(10**5, 10**7)}"

    def story_subscribe(self, c: DemoCustomer, at: datetime) -> tuple[list[Event], datetime, bool]:
        scene = self.rng.choice(SCENES) if self.rng.random() < 0.5 else ""
        lines = [("subscribe", scene)]
        if self.rng.random() < 0.3:
            lines.append(("text", self.pick(FAQ, FAQ_EN, c)))
        s = self.session(c, at, *lines)
        return [s], self.end_of(s), False

    def story_faq(self, c: DemoCustomer, at: datetime) -> tuple[list[Event], datetime, bool]:
        r = self.rng
        lines = [("text", self.pick(GREETINGS, GREETINGS_EN, c))] if r.random() < 0.3 else []
        questions = self.rng.sample(FAQ_EN if c.lang == "en" else FAQ, r.choice((1, 1, 1, 2, 2, 3)))
        lines += [("text", q) for q in questions]
        if r.random() < 0.4:
            lines.append(("text", self.pick(THANKS, THANKS_EN, c)))
        if r.random() < 0.04:
            lines.append(("image", ""))
        s = self.session(c, at, *lines)
        return [s], self.end_of(s), False

    def story_chat(self, c: DemoCustomer, at: datetime) -> tuple[list[Event], datetime, bool]:
        lines = [("text", self.pick(GREETINGS, GREETINGS_EN, c))]
        if self.rng.random() < 0.5:
            lines.append(("text", self.pick(THANKS, THANKS_EN, c)))
        s = self.session(c, at, *lines)
        return [s], self.end_of(s), False

    def story_praise(self, c: DemoCustomer, at: datetime) -> tuple[list[Event], datetime, bool]:
        s = self.session(c, at, ("text", self.pick(PRAISE, PRAISE_EN, c)))
        return [s], self.end_of(s), False

    def story_points_stranger(self, c: DemoCustomer, at: datetime) -> tuple[list[Event], datetime, bool]:
        """A follower who is not a member asks for points; half of them bind their card there and then."""
        ask = ("text", self.pick(POINTS_ASKS[:3], POINTS_ASKS_EN[:2], c))
        if self.rng.random() < 0.5:
            s = self.session(c, at, ask)
            return [s], self.end_of(s), False
        return self.story_bind(c, at, first=ask)

    def story_bind(self, c: DemoCustomer, at: datetime, first: tuple[str, str] | None = None,
                   points: int | None = None) -> tuple[list[Event], datetime, bool]:
        """Bind the card by phone and one-time code (a typo, a wrong code or walking away now and
        then), then the member's purchases over the weeks. ``points``: an old member's points,
        and the binding goes through."""
        r = self.rng
        sure = points is not None
        opener = ("click", "MENU_BIND") if r.random() < 0.2 else \
            ("text", "bind card" if c.lang == "en" else r.choice(BIND_ASKS))
        lines = ([first] if first else []) + [opener]
        if r.random() < 0.08:
            lines.append(("text", c.phone[:7]))  # a digit short: asked again
        spaced = f"{c.phone[:3]} {c.phone[3:7]} {c.phone[7:]}"
        lines.append(("text", spaced if r.random() < 0.2 else c.phone))
        if not sure and r.random() < 0.06:  # walked away before the code came
            s = self.session(c, at, *lines)
            return [s], self.end_of(s), False
        if not sure and r.random() < 0.1:
            lines.append(("wrong_code", ""))
        lines.append(("code", ""))
        s = self.session(c, at, *lines)
        made: list[Event] = [s, *self.purchases(c, self.end_of(s), points)]
        end = self.end_of(s)
        if r.random() < 0.4:  # a look at the balance, once the old card's points have moved over
            ask = self.session(c, end + timedelta(seconds=r.uniform(60, 600)),
                               ("text", self.pick(POINTS_ASKS[:2], POINTS_ASKS_EN[:1], c)))
            made.append(ask)
            end = self.end_of(ask)
        return made, end, False

    def purchases(self, c: DemoCustomer, bound: datetime, migrated: int | None = None) -> list[Event]:
        """An old member's points moved over at binding (or the new card's gift), then the
        member's purchases, and now and then a redemption the balance covers."""
        r, keys = self.rng, iter(range(1, 100_000))
        if migrated is None and r.random() < 0.55:
            migrated = int(10 ** r.uniform(2.3, 4.4))  # 200 .. 25,000: every level is there
        # Just after the binding, and before now even for a card bound a moment ago.
        first = Purchase(bound + min(timedelta(seconds=5), (self.now - bound) / 2), c, "earn", migrated or 100,
                         "老会员积分迁入" if migrated else "开卡礼", "")
        bought = []
        span = (self.now - bound).total_seconds()
        for _ in range(int(span / 86400 * r.uniform(0.1, 0.45))):
            amount = r.choice((18, 22, 26, 28, 32, 36, 45, 58, 76, 99))
            where = r.choice((f"{r.choice(STORES)}消费", "小程序下单", "外卖订单"))
            bought.append(Purchase(self.daytime(bound + timedelta(seconds=span * r.random())), c, "earn", amount,
                                   f"{where} ¥{amount}", ""))
        made, balance = [], 0
        for entry in [first, *sorted(bought, key=lambda e: e.at)]:
            made.append(entry)
            balance += entry.points
            if balance >= 600 and r.random() < 0.12:
                points, reward = r.choice(((300, "中杯饮品券"), (500, "咖啡豆8折券"), (1200, "帆布袋")))
                if points <= balance:
                    made.append(Purchase(entry.at + timedelta(minutes=r.randrange(2, 600)), c, "redeem", -points,
                                         f"兑换 {reward}", ""))
                    balance -= points
        for entry in made:  # the till's own idempotency key, one per sale
            entry.key = f"demo:{c.openid}:{next(keys)}"
        return [entry for entry in made if entry.at < self.now]

    def story_points(self, c: DemoCustomer, at: datetime) -> tuple[list[Event], datetime, bool]:
        r = self.rng
        asks = [("click", r.choice(POINTS_MENU)) if r.random() < 0.3 else ("text", self.pick(POINTS_ASKS,
                                                                                               POINTS_ASKS_EN, c))]
        if r.random() < 0.35:
            asks.append(("text", self.pick(POINTS_ASKS, POINTS_ASKS_EN, c)))
        s = self.session(c, at, *asks)
        return [s], self.end_of(s), False

    def story_lead(self, c: DemoCustomer, at: datetime, final: str | None = None) -> tuple[list[Event], datetime, bool]:
        """A franchise, wholesale or group-order enquiry; the marketer follows it up."""
        r = self.rng
        if c.lang == "en":
            lines = [("text", self.fill(r.choice(LEADS_EN))), ("text", f"my name is {r.choice(EN_NAMES)}"),
                     ("text", c.phone)]
        else:
            name = r.choice(SURNAMES) + r.choice(("先生", "女士", "小姐", "经理", "总"))
            if r.random() < 0.3:  # everything in one message
                lines = [("text", f"我姓{name[0]}，手机{c.phone}，{self.fill(r.choice(LEADS))}")]
            else:
                lines = [("text", self.fill(r.choice(LEADS))), ("text", name), ("text", c.phone)]
        s = self.session(c, at, *lines)
        made: list[Event] = [s]
        end = step = self.end_of(s)
        final = final or r.choices(tuple(LEAD_PATHS), (1, 3, 3, 2, 2))[0]
        for status in LEAD_PATHS[final]:
            step = self.work_time(step + timedelta(hours=r.uniform(2, 40)))
            if step >= self.now:
                break
            made.append(LeadStep(step, c, status))
        return made, end, False

    def work_time(self, at: datetime) -> datetime:
        """The first moment at or after ``at`` when staff are at work (09:00-22:00, every day)."""
        local = at.astimezone(SHANGHAI)
        if 9 <= local.hour < 22:
            return at
        morning = local.replace(hour=9, minute=0, second=0, microsecond=0)
        if local.hour >= 22:
            morning += timedelta(days=1)
        return morning.astimezone(timezone.utc) + timedelta(minutes=self.rng.randrange(0, 50))

    def story_complaint(self, c: DemoCustomer, at: datetime, complaint: Complaint | None = None,
                        outcome: str | None = None, order: bool | None = None, minutes: float | None = None
                        ) -> tuple[list[Event], datetime, bool]:
        """The customer complains in their own words (sometimes "投诉" first, a photo, the order
        number); staff answer and settle it, and the customer rates it, or not."""
        r = self.rng
        complaint = complaint or r.choice(COMPLAINTS_EN if c.lang == "en" else COMPLAINTS)
        text = self.fill(complaint.text)
        lines: list[tuple[str, str]] = []
        if c.lang == "zh" and r.random() < 0.12:
            lines.append(("text", r.choice(("投诉", "我要投诉"))))
        lines.append(("text", text))
        # The bot asks for the order number unless it was given, or the complaint is urgent.
        if "{order}" not in complaint.text and c.lang == "zh" and not complaint.urgent:
            if r.random() < 0.12:
                lines.append(("image", ""))
            order = r.random() < 0.55 if order is None else order
            if order:
                lines.append(("text", r.choice(("{}", "订单号 {}", "单号是{}")).format(self.order_no())))
            elif r.random() < 0.7:
                lines.append(("text", r.choice(ORDER_NONE)))
        key = self.ticket_key(c)
        s = self.session(c, at, *lines, opens=key)
        settle = SETTLEMENTS_EN["other"] if c.lang == "en" else SETTLEMENTS[complaint.category]
        staff_member = SUPERVISOR if complaint.urgent and r.random() < 0.7 else r.choice(AGENTS)
        made, end, stays_open = self.staff_work(c, key, self.end_of(s), [s], staff_member, complaint.urgent, settle,
                                                outcome, handoff=False, minutes=minutes)
        for step in made:
            if isinstance(step, StaffStep) and step.action == "resolve":
                step.category = complaint.category
                step.points = r.choice((0, 0, 100, 200, 300))  # credited if the customer has a card
        return made, end, stays_open

    def story_handoff(self, c: DemoCustomer, at: datetime, outcome: str | None = None
                      ) -> tuple[list[Event], datetime, bool]:
        """转人工: the customer says what they need while waiting, an agent answers and closes it;
        some call it off before anyone takes it."""
        r = self.rng
        key = self.ticket_key(c)
        ask = self.pick(HANDOFF_ASKS, HANDOFF_ASKS_EN, c)
        outcome = outcome or ("cancelled" if r.random() < 0.22 else None)
        if outcome == "cancelled":
            s = self.session(c, at, ("text", ask), ("text", "cancel" if c.lang == "en" else r.choice(CANCELS)),
                             opens=key)
            return [s], self.end_of(s), False
        values = self.values()  # the question and its answer name the same store, the same order
        question, answer = (text.format(**values) for text in r.choice(HANDOFF_QUESTIONS_EN if c.lang == "en"
                                                                           else HANDOFF_QUESTIONS))
        s = self.session(c, at, ("text", ask), ("text", question), opens=key)
        settle = (answer, "none", None, None)
        return self.staff_work(c, key, self.end_of(s), [s], r.choice(AGENTS), False, settle, outcome, handoff=True)

    def ticket_key(self, c: DemoCustomer) -> str:
        self.tickets += 1
        return f"{c.index}:{self.tickets}"

    def staff_work(self, c: DemoCustomer, key: str, opened: datetime, made: list[Event], agent: str, urgent: bool,
                   settle: tuple[str, str | None, str | None, str | None], outcome: str | None, handoff: bool,
                   minutes: float | None = None) -> tuple[list[Event], datetime, bool]:
        """Claim, reply, resolve and the rating, each when staff would get to it (the first reply
        ``minutes`` after, by default a draw). ``outcome`` forces where it stops: open, claimed,
        rated, unrated or unreachable (answered after WeChat's 48 hours); by default the time
        decides, with a few tickets that slip through or are found late."""
        r = self.rng
        reply_text, level, compensation, note = settle
        if outcome is None and r.random() < 0.03:
            outcome, minutes = "unreachable", r.uniform(50, 90) * 60  # found days late
        if minutes is not None:
            delay = minutes
        elif urgent:
            delay = r.uniform(4, 25) if r.random() < 0.85 else r.uniform(30, 120)
        else:
            delay = r.lognormvariate(3.6, 0.8) if r.random() < 0.85 else r.uniform(200, 600)
        replied = self.work_time(opened + timedelta(minutes=delay))
        if outcome is None and r.random() < 0.04:
            outcome = "open"  # slipped through the queue: breached
        if outcome == "open" or replied >= self.now:
            return made, opened, True
        claimed = max(replied - timedelta(seconds=r.uniform(20, 240)), opened + timedelta(seconds=30))
        made.append(StaffStep(claimed, c, key, "claim", agent))
        made.append(StaffStep(replied, c, key, "reply", agent, reply_text.format(agent=agent)))
        last = replied
        if handoff and outcome != "unreachable":  # the customer answers the agent; the bot stays quiet
            thanks = self.session(c, replied + timedelta(seconds=r.uniform(40, 300)),
                                  ("text", self.pick(THANKS[:3], THANKS_EN, c)))
            made.append(thanks)
            last = self.end_of(thanks)
        hours = r.uniform(0.05, 0.3) if handoff else r.choice((r.uniform(0.2, 3), r.uniform(0.2, 3), r.uniform(3, 30)))
        resolved = self.work_time(last + timedelta(hours=hours))
        if outcome is None and r.random() < 0.03:
            outcome = "claimed"  # the agent forgot to close it: breached once its resolution is due
        if outcome == "claimed" or resolved >= self.now:
            return made, last, True
        if outcome == "unreachable":  # WeChat's window had closed: settled by phone instead
            note = "超过48小时，微信无法回复，已电话联系客户处理"
        made.append(StaffStep(resolved, c, key, "resolve", agent, complaint_level=level, compensation=compensation,
                              note=note))
        answers = outcome == "rated" or (outcome is None and r.random() < 0.62)
        answered = resolved + timedelta(minutes=r.uniform(1, 25))
        if not answers or answered >= self.now:
            return made, resolved, False
        late = delay > (30 if urgent else 240)
        score = r.choices((1, 2, 3, 4, 5), (20, 20, 25, 20, 15) if late else (3, 4, 10, 28, 55))[0]
        mood = "good" if score >= 4 else "fair" if score == 3 else "bad"
        comments = CSAT_COMMENTS.get(f"{mood}_en", CSAT_COMMENTS["good_en"]) if c.lang == "en" else CSAT_COMMENTS[mood]
        lines = [("text", str(score) if c.lang == "en" else r.choice(SCORE_TEXTS[score]))]
        lines.append(("text", r.choice(comments).format(agent=agent) if r.random() < 0.6 else
                      ("no" if c.lang == "en" else "没有")))
        rating = self.session(c, answered, *lines, rating_for=key)
        made.append(rating)
        return made, self.end_of(rating), False

    def story_unsubscribe(self, c: DemoCustomer, at: datetime) -> tuple[list[Event], datetime, bool]:
        s = self.session(c, at, ("unsubscribe", ""))
        return [s], self.end_of(s), False


def _complaint(words: str) -> Complaint:
    return next(complaint for complaint in COMPLAINTS if words in complaint.text)


def _ago(p: Planner, hours: float) -> datetime:
    """``hours`` before now, within the window."""
    return max(p.now - timedelta(hours=hours), p.start + timedelta(minutes=30))


# The first customers' stories: every ticket state, a member and a lead, whatever the size.
SHOWCASE: tuple[Callable[[Planner, DemoCustomer], list[tuple[datetime, str, dict]]], ...] = (
    # A gold member finds a hair in her drink; answered within minutes, settled, rated.
    lambda p, c: [(_ago(p, 100), "subscribe", {}), (_ago(p, 99), "bind", {"points": 6800}),
                  (_ago(p, 60), "complaint", {"complaint": _complaint("一根头发"), "outcome": "rated", "order": True,
                                              "minutes": 12})],
    # Food poisoning reported 30 hours ago, never answered: open, far past its SLA.
    lambda p, c: [(_ago(p, 30), "complaint", {"complaint": _complaint("全家拉肚子"), "outcome": "open"})],
    # A late delivery, claimed and answered, not yet closed.
    lambda p, c: [(_ago(p, 20), "complaint", {"complaint": _complaint("外卖等了"), "outcome": "claimed"})],
    # 转人工, then 算了: cancelled.
    lambda p, c: [(_ago(p, 80), "handoff", {"outcome": "cancelled"})],
    # Wrong order, resolved; the rating question goes unanswered.
    lambda p, c: [(_ago(p, 120), "complaint", {"complaint": _complaint("燕麦奶"), "outcome": "unrated"})],
    # A franchise lead, qualified by the marketer.
    lambda p, c: [(_ago(p, 90), "lead", {"final": "qualified"})],
    # A hand-off answered by an agent and rated.
    lambda p, c: [(_ago(p, 50), "handoff", {"outcome": "rated"})],
    # A rude-staff complaint half an hour ago: open, still within its SLA.
    lambda p, c: [(_ago(p, 0.5), "complaint", {"complaint": _complaint("收银员"), "outcome": "open"})],
)


# --- Weibo and Twitter: the brand's mentions, heard by the real listener ------------------------

# The brand's accounts when the settings name none (CRMBOT_WEIBO_UID, CRMBOT_TWITTER_USER_ID). With
# them set, the demo's listening history is kept under the configured accounts, where a live poll
# would keep it, so the console shows one history either way.
WEIBO_UID = "7301520888"
TWITTER_USER_ID = "1492871046380376065"
TWITTER_HANDLE = "@chakafang"
# Followers of the Official Account from before the demo: the demo customers are the ones who
# write in; most followers never do (about three per writer), plus a long-time base.
WECHAT_SILENT_PER_CUSTOMER = 3
WECHAT_BASE_FOLLOWERS = 1_500
# When the Listener polls, in the brand's hours (the live scheduler polls every two minutes; a few
# polls a day keep the demo quick and still open each ticket within hours of its post).
POLL_HOURS = (9.5, 13, 17, 21)
WATCH_TERMS = (("茶咖坊", "brand"), ("chakafang", "brand"), ("生椰拿铁", "product"), ("桂花乌龙拿铁", "product"),
               ("杨枝甘露", "product"), ("cold brew", "product"), ("瑞幸", "competitor"), ("喜茶", "competitor"),
               ("luckin", "competitor"), ("heytea", "competitor"), ("#茶咖坊秋日限定#", "campaign"),
               ("#茶咖坊会员日#", "campaign"), ("#chakafangautumn", "campaign"))
# What people post about the brand, by kind, and how often each kind comes up. The listener's own
# analysis and rules decide what each becomes; these texts were checked to read as meant.
MENTION_MIX = (("praise", 22), ("question", 15), ("complaint", 15), ("food_safety", 2), ("purchase", 12),
               ("competitor", 10), ("campaign", 14), ("chatter", 10))
WEIBO_TEXTS = {
    "praise": ("@茶咖坊 今天的{drink}也太好喝了吧！每天一杯续命", "{store}的小姐姐超温柔，下雨天还帮我套了袋子 @茶咖坊 爱了",
               "秋天的第一杯桂花乌龙拿铁，桂花香好浓，已经回购三次了 @茶咖坊", "打卡@茶咖坊 {store}，环境很舒服适合办公，{drink}好评",
               "@茶咖坊 杨枝甘露料超足，芒果很新鲜，良心店", "@茶咖坊 生椰拿铁yyds，加班的快乐源泉",
               "@茶咖坊 谢谢{store}的店长，忘带手机还让我先把咖啡拿走"),
    "question": ("@茶咖坊 请问{store}几点关门呀？", "@茶咖坊 {drink}可以换成燕麦奶吗？乳糖不耐受", "@茶咖坊 会员日是每周几？积分怎么兑换",
                 "@茶咖坊 小程序点单能开发票吗", "@茶咖坊 {city}有你们的店吗？出差想去喝", "@茶咖坊 周末去哪家店人少一点",
                 "@茶咖坊 冬天有热饮推荐吗？"),
    "complaint": ("@茶咖坊 今天在{store}买的{drink}一股怪味，奶是不是坏了，太失望了", "@茶咖坊 {drink}的珍珠是硬的，根本没煮熟，浪费钱",
                  "@茶咖坊 外卖等了{minutes}分钟才送到，{drink}全凉了，差评", "@茶咖坊 骑手送错地址，打电话也没人接，到现在没收到",
                  "@茶咖坊 {store}的店员态度太差了，问个问题爱答不理还翻白眼", "@茶咖坊 收银员对顾客大呼小叫，服务态度极差，再也不去了",
                  "@茶咖坊 小程序支付失败但是钱扣了两次，客服也不回", "@茶咖坊 点单小程序又卡住了，付不了款，气死",
                  "@茶咖坊 {store}排队半小时，店员就两个人，忙不过来"),
    "food_safety": ("@茶咖坊 喝了{store}的{drink}之后拉肚子一晚上，你们的食品安全到底有没有人管",
                    "@茶咖坊 {drink}里喝出一只虫子，恶心死了，已经拍照留证", "@茶咖坊 买的咖啡豆收到发现过期了，食品安全呢？"),
    "purchase": ("@茶咖坊 想在{city}加盟，怎么联系你们的招商经理？", "@茶咖坊 公司下午茶想团购{cups}杯，有团购价吗",
                 "@茶咖坊 我们是做咖啡豆批发的，想和你们合作，求联系方式", "@茶咖坊 年会要订{cups}杯奶茶，能送到{city}吗",
                 "@茶咖坊 学校社团活动想订{cups}杯，可以优惠吗", "#茶咖坊秋日限定# 公司想团购{cups}杯桂花乌龙拿铁，活动价能用吗 @茶咖坊",
                 "@茶咖坊 我们公司想定制logo杯套，下午茶每周订{cups}杯，求联系", "@茶咖坊 在{city}能代理你们的咖啡豆吗"),
    "competitor": ("茶咖坊的生椰拿铁和瑞幸的比，我更喜欢茶咖坊，奶味更足 @茶咖坊", "@茶咖坊 和喜茶比价格实在多了，味道也不输",
                   "喜茶的新品一般，还是@茶咖坊 的杨枝甘露好喝", "瑞幸9块9天天喝，@茶咖坊 什么时候也搞个优惠",
                   "瑞幸和@茶咖坊 的生椰拿铁盲测，朋友全选了茶咖坊哈哈"),
    "campaign": ("#茶咖坊秋日限定# 转发抽奖！桂花乌龙拿铁第二杯半价 @茶咖坊", "#茶咖坊秋日限定# 桂花乌龙拿铁yyds，拍照超好看",
                 "#茶咖坊会员日# 积分翻倍，冲冲冲 @茶咖坊", "#茶咖坊会员日# 今天积分翻倍，囤了两杯券 @茶咖坊",
                 "抽我抽我 #茶咖坊秋日限定# //@茶咖坊:转发本条微博，抽30位送桂花乌龙拿铁一杯"),
    "chatter": ("今天又是被@茶咖坊 续命的一天", "和闺蜜在@茶咖坊 {store}坐了一下午，聊到打烊"),
}
# Weibo's emoticons, which many posts end with, by the mood of the kind.
WEIBO_TAILS = {"praise": ("", "", " [赞]", " [爱你]", " [哈哈]"), "campaign": ("", " [哈哈]", " [鼓掌]"),
               "complaint": ("", "", " [怒]", " [抓狂]"), "food_safety": ("", " [怒]")}
TWEETS = {
    "praise": ("@chakafang the {drink_en} at {store_en} is unreal, best coffee in Shanghai",
               "Love the new osmanthus oolong latte from @chakafang #ChakafangAutumn",
               "@chakafang your staff at {store_en} are always so friendly, thank you!",
               "@chakafang cold brew + rainy afternoon = perfect"),
    "question": ("@chakafang do you have oat milk at {store_en}?", "@chakafang what time does {store_en} close on Sundays?",
                 "@chakafang is the osmanthus latte available for delivery?",
                 "@chakafang any plans for a Hong Kong store?"),
    "complaint": ("@chakafang waited {minutes} minutes for my delivery and the coffee was cold. Not happy.",
                  "@chakafang the barista at {store_en} was incredibly rude to me today",
                  "@chakafang my {drink_en} tasted sour, the milk was clearly off. Disappointed.",
                  "@chakafang ordered 3 drinks, got 2, and nobody answers the phone at the store. terrible service",
                  "@chakafang the app keeps crashing when I try to pay",
                  "@chakafang my delivery never arrived and support isn't replying. really frustrating"),
    "food_safety": ("@chakafang found a piece of plastic in my {drink_en}. This is a food safety issue.",),
    "purchase": ("@chakafang where can I buy {cups} cups for our office? need them Friday",
                 "@chakafang interested in a franchise in {city_en}, who do I contact?",
                 "@chakafang do you do wholesale coffee beans? we run a cafe in {city_en}",
                 "@chakafang can you do catering for a corporate event of {cups} people?",
                 "@chakafang looking for a bulk order of cold brew bottles for a conference, can you quote?",
                 "@chakafang we're organizing a team offsite for {cups} people, do you do bulk orders?"),
    "competitor": ("chakafang oat latte > luckin's, fight me",
                   "Tried Heytea and Chakafang back to back. Chakafang's cold brew wins.",
                   "luckin is cheaper but @chakafang actually tastes like coffee"),
    "campaign": ("#ChakafangAutumn osmanthus latte is back and I'm so happy @chakafang",
                 "#ChakafangAutumn giveaway: RT to win a month of free drinks from @chakafang"),
    "chatter": ("latte number three this week from @chakafang, love it",
                "working from {store_en} today, @chakafang wifi is solid"),
}
# Chinese speakers on Twitter (abroad, mostly): about one tweet in seven, for the kinds that have some.
TWEETS_ZH = {
    "praise": ("@chakafang 在国外也能喝到杨枝甘露就好了，好想念",),
    "purchase": ("@chakafang 海外可以加盟吗？想在新加坡开一家",),
    "complaint": ("@chakafang 外卖等了一个小时，咖啡都凉了，太失望了",),
}
WEIBO_NAMES = (("爱喝奶茶的", "杭州", "上海", "打工人", "今天也要", "不吃香菜的", "一只", "深夜", "苏州", "减肥失败的"),
               ("小鱼", "阿七", "橘子", "团子", "Lily", "momo", "大王", "咖啡控", "小熊", "喵喵"))
WEIBO_KOLS = ("杭州美食探店", "魔都咖啡地图", "上海吃喝玩乐指南", "江浙沪探店王", "奶茶测评君")
TWITTER_NAMES = (("coffee", "latte", "matcha", "sh", "tea", "bean", "em", "jay", "oat", "expat"),
                 ("_lover", "nerd", "_in_sh", "girl", "_daily", "wang", "chen", "88", "_addict", "_notes"))
TWITTER_KOLS = ("ShanghaiEats", "AsiaCoffeeReview", "ExpatShanghai", "TeaTimeAsia")


@dataclass(frozen=True)
class Author:
    """Someone who posts about the brand, with their public profile."""

    id: str
    name: str
    followers: int
    verified: bool


class ListeningPlanner:
    """What the brand's listening hears over the window: the mentions on Weibo and Twitter (with
    their authors, heavy-tailed followers, counts and ids as each platform gives them), the
    accounts' followers day by day, and when staff and the marketer follow up what the rules made."""

    def __init__(self, rng: random.Random, start: datetime, now: datetime) -> None:
        self.rng, self.start, self.now = rng, start, now
        self.times = Planner(rng, start, now)  # the brand's day: customers' hours, staff hours
        self.days = [start.astimezone(SHANGHAI).date() + timedelta(days=n)
                     for n in range((now.astimezone(SHANGHAI).date() - start.astimezone(SHANGHAI).date()).days + 1)]

    def moment(self) -> datetime:
        return self.times.daytime(self.start + (self.now - self.start) * self.rng.random())

    def kinds(self, count: int) -> list[str]:
        """``count`` kinds of mention: every kind once (so a small demo has each), the rest drawn."""
        names = [name for name, _ in MENTION_MIX]
        drawn = self.rng.choices(names, [weight for _, weight in MENTION_MIX], k=max(count - len(names), 0))
        kinds = names[:count] + drawn
        self.rng.shuffle(kinds)
        return kinds

    def authors(self, names: tuple[Sequence[str], Sequence[str]], kols: Sequence[str], count: int,
                make_id: Callable[[], str]) -> list[Author]:
        """``count`` authors, most with a few hundred followers, a few influencers (most of them
        verified) with tens of thousands to millions; in no order of followers."""
        r, taken, made, ids = self.rng, set(), [], set()
        for n in range(count):
            influencer = n < len(kols) and r.random() < 0.6
            if influencer:
                name, followers = kols[n], int(10 ** r.uniform(4.3, 6.4))
            else:
                name = r.choice(names[0]) + r.choice(names[1])
                followers = int(r.lognormvariate(5.3, 1.5)) + r.randrange(0, 20)
            while name in taken:
                name += str(r.randrange(10))
            taken.add(name)
            verified = r.random() < (0.85 if followers >= 50_000 else 0.02)
            author_id = make_id()
            while author_id in ids:
                author_id = make_id()
            ids.add(author_id)
            made.append(Author(author_id, name, followers, verified))
        r.shuffle(made)
        return made

    def engagement(self, author: Author, kind: str) -> tuple[int, int, int]:
        """Reposts, comments and likes: they grow with the author's reach, sublinearly; a
        complaint draws comments, a giveaway reposts."""
        r = self.rng
        likes = int(author.followers ** 0.6 * r.lognormvariate(-1.0, 1.0))
        comments = int(likes * r.uniform(0.05, 0.3) * (3 if kind in ("complaint", "food_safety") else 1))
        reposts = int(likes * r.uniform(0.0, 0.25) * (4 if kind == "campaign" else 1))
        return reposts, comments, likes

    def fill(self, text: str) -> str:
        r = self.rng
        return text.format(store=r.choice(STORES), drink=r.choice(DRINKS), drink_en=r.choice(DRINKS_EN),
                           store_en=r.choice(STORES_EN), minutes=r.choice((50, 70, 80, 90, 100)), city=r.choice(CITIES),
                           city_en=r.choice(CITIES_EN + ("Singapore", "Hong Kong")), cups=r.choice((20, 30, 50, 80)))

    def weibo(self, account: str, count: int) -> list[Mention]:
        """Posts and comments that mention the brand on Weibo. Ids grow with time (a comment's
        and a brand post's alike); a comment sits under one of the brand's own posts."""
        r = self.rng
        authors = self.authors(WEIBO_NAMES, WEIBO_KOLS, max(4, count * 2 // 3),
                               lambda: str(r.randrange(1_000_000_000, 7_999_999_999)))
        weights = [1 / (n + 1) ** 0.45 for n in range(len(authors))]  # some write again and again
        timeline = sorted([(self.moment(), kind) for kind in self.kinds(count)] +
                          [(self.start + (self.now - self.start) * r.random(), "") for _ in range(len(self.days))] +
                          [(self.start - timedelta(hours=20), "")])
        mentions, brand_post, next_id = [], "", 4_990_000_000_000_000 + r.randrange(10**12)
        for at, kind in timeline:
            next_id += r.randrange(10**8, 10**10)
            if not kind:  # the brand's own post: what comments and reposts hang under
                brand_post = str(next_id)
                continue
            author = r.choices(authors, weights)[0]
            text = self.fill(r.choice(WEIBO_TEXTS[kind])) + r.choice(WEIBO_TAILS.get(kind, ("",)))
            reposts, comments, likes = self.engagement(author, kind)
            common = dict(channel=weibo.NAME, account=account, external_id=str(next_id), text=text, created_at=at,
                          author_id=author.id, author_screen_name=author.name, author_followers=author.followers,
                          author_verified=author.verified)
            if r.random() < 0.3 and "//@" not in text:
                mentions.append(Mention(kind=COMMENT, likes=likes // 4, in_reply_to=brand_post,
                                        url=weibo.STATUS_URL.format(brand_post),
                                        reply_ref=f"{brand_post}/{next_id}", **common))
            else:
                mentions.append(Mention(kind=POST, reposts=reposts, comments=comments, likes=likes,
                                        in_reply_to=brand_post if "//@" in text else None,
                                        url=weibo.STATUS_URL.format(next_id), reply_ref=str(next_id), **common))
        return mentions

    def twitter(self, account: str, count: int) -> list[Mention]:
        """Tweets about the brand: most name its handle (the mentions timeline finds them), some
        only a watch term (recent search finds them). Ids are snowflakes of their time, as
        Twitter's are, so recent search's seven-day cursor rule holds."""
        r = self.rng
        authors = self.authors(TWITTER_NAMES, TWITTER_KOLS, max(3, count * 2 // 3), self.twitter_user_id)
        weights = [1 / (n + 1) ** 0.45 for n in range(len(authors))]
        timeline = sorted([(self.moment(), kind) for kind in self.kinds(count)] +
                          [(self.start + (self.now - self.start) * r.random(), "") for _ in range(len(self.days) // 2)] +
                          [(self.start - timedelta(hours=30), "")])
        mentions, brand_tweet = [], ""
        for at, kind in timeline:
            tweet_id = str(((int(at.timestamp() * 1000) - twitter.TWITTER_EPOCH_MS) << 22) | r.randrange(1 << 22))
            if not kind:
                brand_tweet = tweet_id
                continue
            author = r.choices(authors, weights)[0]
            texts = TWEETS_ZH[kind] if kind in TWEETS_ZH and r.random() < 0.15 else TWEETS[kind]
            text = self.fill(r.choice(texts))
            reposts, comments, likes = self.engagement(author, kind)
            reply = text.startswith(TWITTER_HANDLE) and r.random() < 0.25
            mentions.append(Mention(
                channel=twitter.NAME, account=account, external_id=tweet_id, kind=twitter.REPLY if reply else POST,
                text=text, created_at=at, author_id=author.id, author_screen_name=author.name,
                author_followers=author.followers, author_verified=author.verified, reposts=reposts,
                comments=comments, likes=likes, in_reply_to=brand_tweet if reply else None,
                url=f"https://x.com/{author.name}/status/{tweet_id}", reply_ref=tweet_id))
        return mentions

    def twitter_user_id(self) -> str:
        """An old account's short number, or a newer one's snowflake."""
        r = self.rng
        return str(r.randrange(10**7, 10**10) if r.random() < 0.4 else r.randrange(10**17, 19 * 10**17))

    def followers(self, first: int, daily: float) -> dict[date, int]:
        """An account's followers on each of the window's days: growing about ``daily`` a day,
        some days more, now and then a day that loses a few."""
        counts, n = {}, first
        for day in self.days:
            n = max(n + round(self.rng.gauss(daily, daily)), 0)
            counts[day] = n
        return counts

    def polls(self) -> list[datetime]:
        """When the Listener polls: as the accounts are connected, a few times each day, and once
        more just before now, so the store ends current."""
        made = [self.start + timedelta(minutes=1)]
        for day in self.days:
            for hour in POLL_HOURS:
                local = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI) + timedelta(hours=hour)
                at = local.astimezone(timezone.utc) + timedelta(minutes=self.rng.uniform(-10, 10))
                if made[0] < at < self.now - timedelta(minutes=5):
                    made.append(at)
        return made + [self.now - timedelta(minutes=1)]

    def ticket_steps(self, opened: datetime, priority: str) -> list[tuple[datetime, str]]:
        """When staff claim and resolve a ticket opened from a mention: most are settled within
        the day (a P1 within the hour); a few wait in the queue or stay claimed."""
        r = self.rng
        if r.random() < 0.12:
            return []
        urgent = priority == "P1"
        delay = r.uniform(5, 40) if urgent else r.lognormvariate(3.8, 0.7)
        claimed = self.times.work_time(opened + timedelta(minutes=delay))
        if r.random() < 0.15:
            return [(claimed, "claim")]
        resolved = self.times.work_time(claimed + timedelta(hours=r.uniform(0.3, 2) if urgent else r.uniform(0.5, 20)))
        return [(claimed, "claim"), (resolved, "resolve")]

    def lead_steps(self, captured: datetime) -> list[tuple[datetime, str]]:
        """The marketer's steps for a lead from a mention (as for WeChat's: ``LEAD_PATHS``)."""
        r, at, steps = self.rng, captured, []
        for status in LEAD_PATHS[r.choices(tuple(LEAD_PATHS), (1, 3, 3, 2, 2))[0]]:
            at = self.times.work_time(at + timedelta(hours=r.uniform(2, 40)))
            steps.append((at, status))
        return steps


class DemoWeibo:
    """The brand's Weibo as the Listener reads it (``WeiboClient``'s reads, in memory): what was
    posted up to the simulated now, newest first, and today's follower count."""

    def __init__(self, mentions: Sequence[Mention], followers: dict[date, int], clock: SimulatedClock) -> None:
        self.posted, self.counts, self.clock = sorted(mentions, key=lambda m: int(m.external_id)), followers, clock

    def mention_pages(self, kind: str, since_id: str | None = None, count: int = 50) -> Iterator[weibo.MentionPage]:
        found = _posted(self.posted, self.clock.now, since_id, lambda m: m.kind == kind)
        for page in _chunks(found, count):
            yield weibo.MentionPage(kind, page, (), tuple(m.external_id for m in page), len(found))

    def followers_count(self) -> int:
        return self.counts[self.clock.now.astimezone(SHANGHAI).date()]


class DemoTwitter:
    """The brand's Twitter as the Listener reads it (``TwitterClient``'s reads, in memory): the
    mentions timeline (tweets naming the handle), recent search (the last seven days' tweets
    with the phrase, any case) and today's follower count."""

    def __init__(self, tweets: Sequence[Mention], followers: dict[date, int], clock: SimulatedClock) -> None:
        self.posted, self.counts, self.clock = sorted(tweets, key=lambda m: int(m.external_id)), followers, clock

    def mentions(self, since_id: str | None = None, max_results: int = 100) -> Iterator[twitter.TweetPage]:
        return self._pages(lambda m: TWITTER_HANDLE in m.text.lower(), since_id, max_results)

    def search(self, query: str, since_id: str | None = None, max_results: int = 100) -> Iterator[twitter.TweetPage]:
        phrase, week_ago = query.strip('"').lower(), self.clock.now - timedelta(days=7)
        return self._pages(lambda m: m.created_at > week_ago and phrase in m.text.lower(), since_id, max_results)

    def followers(self) -> int:
        return self.counts[self.clock.now.astimezone(SHANGHAI).date()]

    def _pages(self, wanted: Callable[[Mention], bool], since_id: str | None, size: int
               ) -> Iterator[twitter.TweetPage]:
        found = _posted(self.posted, self.clock.now, since_id, wanted)
        for n, page in enumerate(_chunks(found, size)):
            more = (n + 1) * size < len(found)
            yield twitter.TweetPage(page, page[0].external_id, page[-1].external_id, str(n + 1) if more else None,
                                    len(page))


def _posted(mentions: Sequence[Mention], now: datetime, since_id: str | None,
            wanted: Callable[[Mention], bool]) -> tuple[Mention, ...]:
    """The wanted mentions posted by ``now`` and newer than ``since_id``, newest first."""
    since = int(since_id) if since_id else -1
    return tuple(m for m in reversed(mentions) if m.created_at <= now and int(m.external_id) > since and wanted(m))


def _chunks(mentions: tuple[Mention, ...], size: int) -> Iterator[tuple[Mention, ...]]:
    for first in range(0, len(mentions), size):
        yield mentions[first:first + size]


class _Listening:
    """The brand's social side on the simulated clock, between the customers' events: the real
    ``Listener`` polls the in-memory Weibo and Twitter a few times a day (so its analysis and
    rules make the mentions' tickets and leads, at poll time), staff work those tickets and the
    marketer those leads, and the Official Account's followers are counted at each day's end."""

    def __init__(self, rt: Runtime, clock: SimulatedClock, plan: ListeningPlanner, customers: int) -> None:
        self.rt, self.clock, self.plan = rt, clock, plan
        s, days = rt.settings, (plan.now - plan.start).total_seconds() / 86400
        self.accounts = {weibo.NAME: s.weibo_uid or WEIBO_UID, twitter.NAME: s.twitter_user_id or TWITTER_USER_ID}
        # The follower series first: they then depend on the seed alone, not on the time of day.
        weibo_followers = plan.followers(plan.rng.randrange(80_000, 120_000), 90)
        twitter_followers = plan.followers(plan.rng.randrange(2_500, 4_000), 6)
        # Mentions scale with the brand's size: about one Weibo mention a day per 90 customers.
        weibo_mentions = plan.weibo(self.accounts[weibo.NAME], round(days * max(6, customers / 90)))
        tweets = plan.twitter(self.accounts[twitter.NAME], round(days * max(3, customers / 250)))
        clients = {weibo.NAME: DemoWeibo(weibo_mentions, weibo_followers, clock),
                   twitter.NAME: DemoTwitter(tweets, twitter_followers, clock)}
        self.listeners = [Listener(channel, account, clients[channel], rt.uow, rt.content.rules, listening_rules(),
                                   clock=clock.timestamp) for channel, account in self.accounts.items()]
        self.wechat_before = WECHAT_BASE_FOLLOWERS + WECHAT_SILENT_PER_CUSTOMER * customers
        self.queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self.order = iter(range(1, 10**9))  # ties keep the order they were queued in
        self.seen_ticket = self.seen_lead = 0
        self.mentions = 0
        for at in plan.polls():
            self.at(at, self.poll)
        for day in plan.days:  # the Official Account's followers, as each day ends (today: now)
            ends = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI) + timedelta(days=1, seconds=-1)
            self.at(min(ends.astimezone(timezone.utc), plan.now - timedelta(seconds=30)), self.wechat_followers)

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        if when < self.plan.now:
            heapq.heappush(self.queue, (when, next(self.order), action))

    def catch_up(self, until: datetime) -> None:
        """Everything due before ``until``, in time order."""
        while self.queue and self.queue[0][0] < until:
            when, _, action = heapq.heappop(self.queue)
            self.clock.now = when
            action()

    def poll(self) -> None:
        for listener in self.listeners:
            self.mentions += sum(run.new for run in listener.poll())
        self.follow_up()

    def follow_up(self) -> None:
        """Plan the staff's and the marketer's work on the tickets and leads this poll made."""
        with self.rt.uow() as uow:
            tickets = uow.session.execute(
                select(Ticket.id, Ticket.created_at, Ticket.priority, Ticket.category, models.Mention.lang)
                .join(models.Mention, models.Mention.ticket_id == Ticket.id)
                .where(Ticket.source == "mention", Ticket.id > self.seen_ticket).order_by(Ticket.id)).all()
            leads = uow.session.execute(select(Lead.id, Lead.created_at).where(
                Lead.source_channel.in_(tuple(self.accounts)), Lead.id > self.seen_lead).order_by(Lead.id)).all()
        for ticket_id, opened, priority, category, lang in tickets:
            agent = SUPERVISOR if priority == "P1" else self.plan.rng.choice(AGENTS)
            settle = SETTLEMENTS_EN["other"] if lang == "en" else SETTLEMENTS.get(category, SETTLEMENTS["other"])
            for when, action in self.plan.ticket_steps(as_utc(opened), priority):
                self.at(when, partial(self.work_ticket, ticket_id, action, agent, settle))
            self.seen_ticket = max(self.seen_ticket, ticket_id)
        for lead_id, captured in leads:
            for when, status in self.plan.lead_steps(as_utc(captured)):
                self.at(when, partial(self.move_lead, lead_id, status))
            self.seen_lead = max(self.seen_lead, lead_id)

    def work_ticket(self, ticket_id: int, action: str, agent: str,
                    settle: tuple[str, str | None, str | None, str | None]) -> None:
        """Claim, or resolve: the author was answered outside the store (a public reply or a
        private message on the platform), so there is no reply to record and no rating to ask."""
        _, level, compensation, note = settle
        with self.rt.uow() as uow:
            if action == "claim":
                services.claim_ticket(ticket_id, agent, uow)
            else:
                services.resolve_ticket(ticket_id, agent, uow, complaint_level=level, compensation=compensation,
                                        note=note)
            uow.commit()

    def move_lead(self, lead_id: int, status: str) -> None:
        with self.rt.uow() as uow:
            services.set_lead_status(lead_id, status, uow, actor=MARKETER)
            uow.commit()

    def wechat_followers(self) -> None:
        """The Official Account's followers today: those who followed before the demo, and the
        identities following now (subscribed by an event, not unsubscribed since)."""
        with self.rt.uow() as uow:
            following = uow.session.scalar(select(func.count()).select_from(ChannelIdentity).where(
                ChannelIdentity.channel == WECHAT, ChannelIdentity.account == ACCOUNT,
                ChannelIdentity.subscribed.is_(True))) or 0
            listening.record_followers(WECHAT, ACCOUNT, self.clock.now.astimezone(SHANGHAI).date(),
                                       self.wechat_before + following, uow)
            uow.commit()


# --- running the plan -----------------------------------------------------------------------

@dataclass(frozen=True)
class DemoSummary:
    """What the store holds after the demo (the whole store: demo data and anything before it)."""

    customers: int
    days: int
    first_day: date
    last_day: date
    seed: int
    seconds: float
    messages_in: int
    messages_out: int
    delivery: dict[str, int]  # outbound messages by delivery state (passive = answered in the webhook)
    tickets: dict[str, int]  # by state
    breached: int  # open or claimed, past their SLA now
    csat_answers: int
    csat_satisfied: int  # answers of 4 or 5
    members: int
    points_entries: int
    leads: dict[str, int]  # by status
    mentions: dict[str, int]  # Weibo and Twitter mentions, by channel
    mention_sentiment: dict[str, int]  # pos | neu | neg
    social_tickets: dict[str, int]  # tickets opened from mentions, by state
    social_leads: dict[str, int]  # leads from mentions, by status
    followers: tuple[FollowerSeries, ...]  # one per channel and account
    staff: tuple[tuple[str, str], ...]  # (name, role)
    staff_created: tuple[str, ...] = ()  # the accounts this run made (with the demo password)


@dataclass(frozen=True)
class FollowerSeries:
    """An account's follower snapshots: how many days have one, the first and the last count."""

    channel: str
    account: str
    days: int
    first: int
    last: int


def format_summary(s: DemoSummary) -> str:
    """The summary as the command prints it."""
    def counts(values: dict[str, int], names: Sequence[str]) -> str:
        return ", ".join(f"{name} {values.get(name, 0):,}" for name in names)

    satisfied = f", {s.csat_satisfied / s.csat_answers:.0%} satisfied (4-5)" if s.csat_answers else ""
    sent = sorted((state, n) for state, n in s.delivery.items() if state != models.PASSIVE)
    accounts = (f"password {DEMO_PASSWORD}; sign in at /console/login once `crmbot run` serves "
                "(an admin: crmbot user create NAME --role admin)" if s.staff_created
                else "accounts there before, passwords unchanged")
    return "\n".join((
        f"demo: 茶咖坊 on WeChat account {ACCOUNT}, {s.customers:,} customers over {s.days} days "
        f"({s.first_day} .. {s.last_day}, seed {s.seed}), filled in {s.seconds:.0f} s. The store now holds:",
        f"  messages  {s.messages_in:,} from customers, {s.messages_out:,} to them: "
        f"{s.delivery.get(models.PASSIVE, 0):,} bot answers; staff replies and rating questions "
        + (", ".join(f"{state} {n:,}" for state, n in sent) or "none"),
        f"  tickets   {sum(s.tickets.values()):,}: "
        + counts(s.tickets, (models.OPEN, models.CLAIMED, models.RESOLVED, models.CANCELLED))
        + f"; breached now (open or claimed past their SLA) {s.breached:,}",
        f"  CSAT      {s.csat_answers:,} answers{satisfied}",
        f"  members   {s.members:,}, with {s.points_entries:,} points entries",
        f"  leads     {sum(s.leads.values()):,}: " + counts(s.leads, models.LEAD_STATUSES),
        f"  mentions  {sum(s.mentions.values()):,}: " + counts(s.mentions, (weibo.NAME, twitter.NAME))
        + "; " + counts(s.mention_sentiment, ("pos", "neu", "neg")),
        f"  social    tickets {sum(s.social_tickets.values()):,}: "
        + counts(s.social_tickets, (models.OPEN, models.CLAIMED, models.RESOLVED))
        + f"; leads {sum(s.social_leads.values()):,}: " + counts(s.social_leads, models.LEAD_STATUSES),
        "  followers " + ("; ".join(f"{f.channel} {f.account} {f.first:,} -> {f.last:,} ({f.days} days)"
                                    for f in s.followers) or "none"),
        "  staff     " + ", ".join(f"{name} ({role})" for name, role in s.staff) + f"; {accounts}",
    ))


class _Filler:
    """Runs a plan's events against the store, on the simulated clock."""

    def __init__(self, rt: Runtime, clock: SimulatedClock, end: datetime, rng: random.Random,
                 progress: Callable[[str], None] | None) -> None:
        self.rt, self.clock, self.end, self.rng, self.progress = rt, clock, end, rng, progress
        self.router = rt.router
        s = rt.settings
        self.channel = WeChatChannel(s.wechat_token, s.wechat_app_id, s.wechat_aes_key, s.wechat_timestamp_window,
                                     clock=clock.timestamp)
        self.server = WeChatServer(s.wechat_token, s.wechat_app_id, s.wechat_aes_key)
        self.codes = MemoryCodeSender()
        # How the bot's "did you mean" answer begins, in each language.
        self.suggestions = tuple(rt.content.say("faq_suggest", lang, choices="\0").split("\0")[0]
                                 for lang in ("zh", "en"))
        self.tickets: dict[str, int] = {}
        self.asked: set[str] = set()  # tickets whose rating question reached the customer
        self.msg_ids = iter(range(24_000_000_000_000_001, 25_000_000_000_000_000))
        self.messages = self.opened = 0

    def run(self, events: Sequence[Event], social: _Listening) -> None:
        """The customers' events in time order, with the social side's polls and follow-ups
        (``social``) in between, at their own times."""
        handlers = {Session: self.session, StaffStep: self.staff_step, Purchase: self.purchase, LeadStep: self.lead}
        day, started, seen = None, time.monotonic(), set()
        for n, event in enumerate(events):
            social.catch_up(event.at)
            today = event.at.astimezone(SHANGHAI).date()
            if today != day and day is not None:
                self.report(day, len(seen), social.mentions, n / len(events), started)
            day = today
            seen.add(event.customer.index)
            self.clock.now = event.at
            handlers[type(event)](event)  # type: ignore[operator]
        social.catch_up(self.end)
        if day is not None:
            self.report(day, len(seen), social.mentions, 1.0, started)

    def report(self, day: date, customers: int, mentions: int, done: float, started: float) -> None:
        """One line per simulated day: the store so far."""
        if self.progress:
            self.progress(f"  {day:%m-%d}  {customers:>6,} customers  {self.messages:>7,} messages  "
                          f"{self.opened:>5,} tickets  {mentions:>6,} mentions   {done:>4.0%}  "
                          f"{time.monotonic() - started:>4.0f} s")

    # - customers -

    def session(self, s: Session) -> None:
        if s.rating_for is not None and s.rating_for not in self.asked:
            return  # the question never reached them (no ticket, or WeChat refused it)
        c, previous = s.customer, s.at
        for line in s.lines:
            self.clock.now = max(s.at + timedelta(seconds=line.offset), previous + timedelta(seconds=3))
            if self.clock.now >= self.end:
                break  # the rest is still to be written
            reply = self.say(c, line)
            picked = self.clock.now + timedelta(seconds=self.rng.uniform(6, 30))
            if reply.startswith(self.suggestions) and self.rng.random() < 0.7 and picked < self.end:
                # "您是不是想问：1. … 2. …": the customer reads it and picks the first.
                self.clock.now = picked
                self.say(c, Line(0, "text", "1"))
            previous = self.clock.now
        c.last_inbound = self.clock.now
        if c.customer_id is None or s.opens:
            with self.rt.uow() as uow:
                identity = uow.identities.find("wechat", ACCOUNT, c.openid)
                c.customer_id = identity.customer_id if identity is not None else None
                if s.opens and c.customer_id is not None:
                    # The customer's own clock runs forward: a ticket of theirs stamped since the
                    # session began is the one it opened.
                    opened = uow.session.scalar(select(func.max(Ticket.id)).where(
                        Ticket.customer_id == c.customer_id, Ticket.created_at >= s.at))
                    if opened is not None:
                        self.tickets[s.opens] = opened
                        self.opened += 1

    def say(self, c: DemoCustomer, line: Line) -> str:
        """Push ``line`` now, through the webhook's path; the bot's answer."""
        inbound = self.inbound(c, line)
        if inbound is None:
            return ""
        self.messages += 1
        return receive(inbound, self.rt.uow, self.router)

    def inbound(self, c: DemoCustomer, line: Line) -> InboundMessage | None:
        """The push WeChat would send for ``line``, signed and parsed by the WeChat channel."""
        created = int(self.clock.timestamp())
        if line.kind in ("text", "code", "wrong_code"):
            text = line.text
            if line.kind == "code":
                text = self.codes.codes.get(c.phone, "")
                if not text:
                    return None  # no code was sent (the bot did not ask for one)
            elif line.kind == "wrong_code":
                right = self.codes.codes.get(c.phone, "")
                text = f"{(int(right or 0) + self.rng.randrange(1, 999_999)) % 1_000_000:06d}"
            xml = text_xml(ACCOUNT, c.openid, text, next(self.msg_ids), created)
        elif line.kind == "image":
            msg_id = next(self.msg_ids)
            xml = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{c.openid}]]>"
                   f"</FromUserName><CreateTime>{created}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
                   f"<PicUrl><![CDATA[http://mmbiz.qpic.cn/mmbiz_jpg/demo{msg_id}/0]]></PicUrl>"
                   f"<MediaId><![CDATA[demo_media_{msg_id}]]></MediaId><MsgId>{msg_id}</MsgId></xml>")
        elif line.kind == "subscribe":
            xml = event_xml(ACCOUNT, c.openid, "subscribe", f"qrscene_{line.text}" if line.text else None, created)
        elif line.kind == "unsubscribe":
            xml = event_xml(ACCOUNT, c.openid, "unsubscribe", None, created)
        else:  # a menu click
            xml = event_xml(ACCOUNT, c.openid, "CLICK", line.text, created)
        query, body = self.server.push(xml, timestamp=created, openid=c.openid)
        return self.channel.parse(dict(parse_qsl(query)), body)

    # - staff -

    def staff_step(self, step: StaffStep) -> None:
        ticket_id = self.tickets.get(step.ticket)
        if ticket_id is None:
            return  # the bot did not open the ticket this story expected
        rt = self.rt
        with rt.uow() as uow:
            try:
                if step.action == "claim":
                    services.claim_ticket(ticket_id, step.agent, uow)
                elif step.action == "reply":
                    self.deliver(services.reply_to_ticket(ticket_id, step.agent, step.text, uow), step, uow)
                else:
                    member = step.points and membership.member_id_of(step.customer.customer_id or 0, uow)
                    ticket = services.resolve_ticket(
                        ticket_id, step.agent, uow, complaint_level=step.complaint_level,
                        compensation=step.compensation, compensation_points=step.points if member else 0,
                        category=step.category, note=step.note)
                    question = services.ask_for_rating(ticket, rt.content, uow, rt.settings.conversation_ttl)
                    if question is not None and self.deliver(question, step, uow) == models.SENT:
                        self.asked.add(step.ticket)
            except services.TicketConflict:
                return  # the customer called the hand-off off meanwhile
            uow.commit()

    def deliver(self, message_id: int, step: StaffStep, uow: UnitOfWork) -> str:
        """What the send worker would have made of it: sent; unreachable once the customer's
        48 hours are over (WeChat 45015); now and then failed after every retry."""
        now = self.clock.now
        claim = outbox.claim_send(message_id, uow, now)
        if claim is None:
            return models.QUEUED
        last = step.customer.last_inbound
        if last is not None and now - last > WINDOW:
            return outbox.record_send(claim, models.UNREACHABLE, uow, "cannot reach the customer: more than 48 hours "
                                      "since their last message (45015)").state
        if self.rng.random() < 0.012:
            outcome = outbox.record_send(claim, outbox.RETRY, uow, "wechat API unreachable: ConnectTimeout", now)
            while outcome.retry_at is not None:  # the worker's retries, each after its backoff
                claim = outbox.claim_send(message_id, uow, outcome.retry_at)
                if claim is None:
                    break
                outcome = outbox.record_send(claim, outbox.RETRY, uow, "wechat API unreachable: ConnectTimeout",
                                             outcome.retry_at)
            return outcome.state
        return outbox.record_send(claim, models.SENT, uow).state

    def purchase(self, p: Purchase) -> None:
        c = p.customer
        if c.customer_id is None:
            return
        with self.rt.uow() as uow:
            member_id = membership.member_id_of(c.customer_id, uow)
            if member_id is None:
                return  # the card was never bound
            try:
                membership.add_points(member_id, p.kind, p.points, p.reason, p.key, uow)
            except membership.PointsError:
                return  # a redemption the balance does not cover
            uow.commit()

    def lead(self, step: LeadStep) -> None:
        c = step.customer
        if c.customer_id is None:
            return
        with self.rt.uow() as uow:
            lead_id = uow.session.scalar(select(Lead.id).filter_by(customer_id=c.customer_id).order_by(Lead.id.desc()))
            if lead_id is None:
                return
            services.set_lead_status(lead_id, step.status, uow, actor=MARKETER)
            uow.commit()


def demo_customers(uow: UnitOfWork) -> int:
    """How many demo customers the store holds."""
    return uow.session.scalar(select(func.count()).select_from(ChannelIdentity).where(
        ChannelIdentity.channel == "wechat", ChannelIdentity.external_id.startswith(OPENID_PREFIX))) or 0


def _staff(uow: UnitOfWork) -> tuple[str, ...]:
    """The demo's staff accounts; those that exist already are kept as they are."""
    created = []
    for name, role in STAFF:
        if uow.session.scalar(select(StaffUser.id).filter_by(name=name)) is None:
            staff.create_user(name, role, DEMO_PASSWORD, uow)
            created.append(name)
    return tuple(created)


def _watch_terms(uow: UnitOfWork) -> None:
    """The demo's watch terms; a term the store tracks (or stopped tracking) already is left as it is."""
    known = {row.term for row in listening.watch_terms(uow, active_only=False)}
    for term, kind in WATCH_TERMS:
        if term not in known:
            listening.add_watch_term(term, kind, uow)


def fill_demo(rt: Runtime, customers: int = 3000, days: int = 28, seed: int = 13,
              progress: Callable[[str], None] | None = None) -> DemoSummary:
    """Fill the store with ``customers`` demo customers' last ``days`` days, ending now.

    Refuses (``DemoExists``) when the store holds demo customers already: a second history laid
    over the first would tangle both (the same days' references and counters, phones bound twice).
    ``seed`` tells the same stories each time, ending at the moment of the run (one-time codes differ).
    """
    if customers < 1 or days < 1:
        raise ValueError("a demo needs at least one customer and one day")
    with rt.uow() as uow:
        existing = demo_customers(uow)
    if existing:
        raise DemoExists(f"the store holds demo data already ({existing:,} demo customers); point "
                         "CRMBOT_DATABASE_URL at an empty store (or remove var/crmbot.db) to fill it again")
    started = time.monotonic()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(days=days)
    rng = random.Random(seed)
    planner = Planner(rng, start, now)
    events = planner.plan(customers)
    if progress:
        progress(f"demo: {customers:,} customers, {days} days, {len(events):,} events planned (seed {seed})")
    clock = SimulatedClock(start)
    filler = _Filler(rt, clock, now, rng, progress)
    # Its own random stream: the customers' stories stay what they were before listening came.
    social = _Listening(rt, clock, ListeningPlanner(random.Random(f"listening:{seed}"), start, now), customers)
    codes = filler.router.codes
    saved_sender = codes.sender if codes is not None else None
    if codes is not None:
        codes.sender = filler.codes  # the customers' phones: the demo reads the codes it sends
    try:
        with clock.installed(filler.router):
            with rt.uow() as uow:
                created = _staff(uow)
                _watch_terms(uow)
                uow.commit()
            filler.run(events, social)
    finally:
        if codes is not None:
            codes.sender = saved_sender
    zone = rt.settings.timezone
    with rt.uow() as uow:  # the KPI day rollups of the whole history, so the dashboards open at once
        period = kpis.Period(kpis.brand_day(start, zone), kpis.brand_day(now, zone), zone)
        kpis.refresh_days(uow, period.days(), zone, kpis.first_response_minutes(rt.content.rules))
        uow.commit()
    return summarize(rt, customers, days, seed, start, now, time.monotonic() - started, created)


def summarize(rt: Runtime, customers: int, days: int, seed: int, start: datetime, now: datetime, seconds: float,
              created: tuple[str, ...]) -> DemoSummary:
    """The store's counts after the demo."""
    with rt.uow() as uow:
        def count(model: type, *where: ColumnElement[bool]) -> int:
            return uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0

        def by(column: InstrumentedAttribute[str | None], *where: ColumnElement[bool]) -> dict[str, int]:
            rows = uow.session.execute(select(column, func.count()).where(*where).group_by(column))
            return {key: n for key, n in rows if key is not None}

        return DemoSummary(
            customers=customers, days=days, first_day=start.astimezone(SHANGHAI).date(),
            last_day=now.astimezone(SHANGHAI).date(), seed=seed, seconds=seconds,
            messages_in=count(Message, Message.direction == "in"),
            messages_out=count(Message, Message.direction == "out"),
            delivery=by(Message.delivery, Message.direction == "out"), tickets=by(Ticket.status),
            breached=count(Ticket, Ticket.breached(datetime.now(timezone.utc))),
            csat_answers=count(Ticket, Ticket.csat_score.is_not(None)),
            csat_satisfied=count(Ticket, Ticket.csat_score >= 4),
            members=count(Member), points_entries=count(PointsEntry), leads=by(Lead.status),
            mentions=by(models.Mention.channel), mention_sentiment=by(models.Mention.sentiment),
            social_tickets=by(Ticket.status, Ticket.source == "mention"),
            social_leads=by(Lead.status, Lead.source_channel.in_((weibo.NAME, twitter.NAME))),
            followers=follower_series(uow), staff=STAFF, staff_created=created)


def follower_series(uow: UnitOfWork) -> tuple[FollowerSeries, ...]:
    """Each account's follower snapshots, first day to last."""
    series: dict[tuple[str, str], list[int]] = {}
    for channel, account, followers in uow.session.execute(select(
            FollowerSnapshot.channel, FollowerSnapshot.account, FollowerSnapshot.followers).order_by(
            FollowerSnapshot.channel, FollowerSnapshot.account, FollowerSnapshot.day)):
        series.setdefault((channel, account), []).append(followers)
    return tuple(FollowerSeries(channel, account, len(counts), counts[0], counts[-1])
                 for (channel, account), counts in series.items())
