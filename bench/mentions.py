"""Listening throughput end to end: mentions per second from a fake Weibo server to the store,
each analysed (sentiment, intent, keywords, watch terms) and its rules applied.

    python -m bench.mentions [--mentions N] [--page-size P] [--database-url URL | --postgres]

The fake Weibo API (tests/fakes/weibo_api.py) is seeded with ``--mentions`` posts, one author in
three new, the texts the labeled Weibo and Twitter rows of nlp/data/labeled.jsonl, each made
unique (no cache helps); then one ``Listener.poll()`` reads them all over real HTTP through the
real adapter, in pages, into a new SQLite store (or ``--database-url``, migrated first). The figure
is stored mentions over the poll's wall time, with the leads and tickets it made.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from channels.weibo import WeiboClient
from config.content import load_content
from config.listening import load_listening
from crm_store import models
from crm_store.db import make_engine
from crm_store.migrate import upgrade
from crm_store.uow import UnitOfWork
from nlp import analysis
from nlp.evaluate import load_labeled
from tests.fakes.weibo_api import FakeWeiboAPI
from tests.pg_cluster import PostgresCluster
from workers.listening import Listener


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=3000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--postgres", action="store_true", help="a private PostgreSQL server (tests/pg_cluster.py)")
    args = parser.parse_args()
    content = load_content()
    analysis.load(content.rules.brand_words)
    rules = dataclasses.replace(load_listening(), page_size=args.page_size)
    texts = [r["text"] for r in load_labeled() if r["channel"] in ("weibo", "twitter")]
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        fake = stack.enter_context(FakeWeiboAPI())
        url = args.database_url or (stack.enter_context(PostgresCluster()) if args.postgres
                                    else f"sqlite:///{Path(folder) / 'bench.db'}")
        upgrade(url)
        engine = make_engine(url)
        author = fake.add_user("粉丝0")
        for n in range(args.mentions):
            if n % 3 == 0:
                author = fake.add_user(f"粉丝{n}", followers=n * 7)
            fake.mention_post(f"{texts[n % len(texts)]} #{n}", author)
        client = WeiboClient(fake.access_token, fake.base_url, fake.uid)
        listener = Listener("weibo", fake.uid, client, lambda: UnitOfWork(engine), content.rules, rules)
        started = time.perf_counter()
        runs = listener.poll(force=True)
        elapsed = time.perf_counter() - started
        with UnitOfWork(engine) as uow:
            stored = uow.session.scalar(select(func.count()).select_from(models.Mention))
        engine.dispose()
    statuses = next(run for run in runs if run.source == "statuses")
    print(f"store        {url.split(':')[0]}")
    print(f"mentions     {stored} stored of {args.mentions} seeded, in {statuses.pages} pages of {args.page_size}")
    print(f"rules        {statuses.tickets} tickets, {statuses.leads} leads")
    print(f"wall time    {elapsed:.2f} s")
    print(f"throughput   {stored / elapsed:.0f} mentions/s")


if __name__ == "__main__":
    main()
