"""The listening pipeline (workers/listening.py, crm_store/listening.py) with the real Weibo and
Twitter adapters against the fake servers, on both stores: mentions stored exactly once with
their exact ids, cursors that move only after a whole run, failures, rate limits and revoked
tokens recorded as poll runs, complaints that become tickets and purchase intent that becomes
leads, linked both ways, and ``crmbot poll``."""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from channels.twitter import TwitterClient
from channels.weibo import TOKEN_SETTING, WeiboClient
from config import ConfigError
from config.listening import LISTENING_FILE, load_listening
from crm_store import listening as store
from crm_store import models
from nlp import analysis
from tests.fakes.twitter_api import FakeTwitterAPI
from tests.fakes.weibo_api import FakeWeiboAPI
from web.cli import main
from workers.listening import Listener, SourceRun
from workers.runtime import Runtime

READ_TIMEOUT = 0.3
RULES = dataclasses.replace(load_listening(), page_size=5)
COMPLAINT = "@品牌官方微博 奶茶里有头发！太恶心了，要投诉"


@pytest.fixture(scope="module", autouse=True)
def models_loaded() -> None:
    analysis.load()


@pytest.fixture()
def weibo_fake() -> Iterator[FakeWeiboAPI]:
    with FakeWeiboAPI() as api:
        api.timeout_seconds = READ_TIMEOUT * 4
        yield api


@pytest.fixture()
def twitter_fake() -> Iterator[FakeTwitterAPI]:
    with FakeTwitterAPI() as api:
        yield api


def weibo_listener(fake: FakeWeiboAPI, rt: Runtime, clock: Any = time.time, token: str | None = None) -> Listener:
    client = WeiboClient(token or fake.access_token, fake.base_url, fake.uid, connect_timeout=1.0,
                         read_timeout=READ_TIMEOUT, retries=1, backoff=0)
    return Listener("weibo", fake.uid, client, rt.uow, rt.content.rules, RULES, clock=clock)


def twitter_listener(fake: FakeTwitterAPI, rt: Runtime) -> Listener:
    client = TwitterClient(fake.bearer_token, fake.user_id, api_base=fake.base_url, timeout=2, retries=1,
                           backoff=(0.0,), sleep=lambda s: None)
    return Listener("twitter", fake.user_id, client, rt.uow, rt.content.rules, RULES)


def by_source(runs: list[SourceRun]) -> dict[str, SourceRun]:
    return {run.source: run for run in runs}


def mentions(rt: Runtime, channel: str = "weibo") -> list[models.Mention]:
    with rt.uow() as uow:
        return list(uow.session.scalars(select(models.Mention).filter_by(channel=channel).order_by(models.Mention.id)))


def stored_ids(rt: Runtime, channel: str = "weibo") -> list[str]:
    return sorted(m.external_id for m in mentions(rt, channel))


def cursor(rt: Runtime, channel: str, account: str, source: str) -> str | None:
    with rt.uow() as uow:
        return store.cursor(channel, account, source, uow)


def poll_runs(rt: Runtime, source: str) -> list[models.PollRun]:
    with rt.uow() as uow:
        return list(uow.session.scalars(select(models.PollRun).filter_by(source=source).order_by(models.PollRun.id)))


def fail_from_second_page(fake: FakeWeiboAPI, listener: Listener, arm: Any) -> None:
    """After the first statuses page has been answered, ``arm()`` scripts the fake's failure, so
    it hits the second page of the run: the middle of pagination."""
    client = listener.client
    original = client.mentions
    calls = {"n": 0}

    def mentions_then_fail(kind: str, *args: Any, **kwargs: Any) -> Any:
        page = original(kind, *args, **kwargs)
        calls["n"] += 1
        if kind == "post" and calls["n"] == 1:
            arm()
        return page

    client.mentions = mentions_then_fail


# ---------------------------------------------------------------------------------- exactly once
def test_two_weibo_polls_store_every_mention_once_with_exact_ids_and_cursors(weibo_fake, runtime) -> None:
    posts = [weibo_fake.mention_post(f"@品牌官方微博 第{i}条 新品") for i in range(12)]
    comments = [weibo_fake.mention_comment(f"@品牌官方微博 评论{i}") for i in range(3)]
    runs = by_source(weibo_listener(weibo_fake, runtime).poll())
    assert (runs["statuses"].outcome, runs["statuses"].fetched, runs["statuses"].new, runs["statuses"].pages) == (
        "ok", 12, 12, 4)  # 5 + 5 + 2, then an empty page
    assert (runs["comments"].outcome, runs["comments"].new) == ("ok", 3)
    expected = sorted(p["idstr"] for p in posts + comments)
    assert stored_ids(runtime) == expected and all(int(i) > 2**53 for i in expected)
    assert cursor(runtime, "weibo", weibo_fake.uid, "statuses") == posts[-1]["idstr"]
    assert cursor(runtime, "weibo", weibo_fake.uid, "comments") == comments[-1]["idstr"]

    again = by_source(weibo_listener(weibo_fake, runtime).poll())
    assert (again["statuses"].fetched, again["statuses"].new, again["comments"].new) == (0, 0, 0)
    assert weibo_fake.mention_calls("statuses")[-1]["since_id"] == posts[-1]["idstr"]
    late = weibo_fake.mention_post("@品牌官方微博 新来的")
    third = by_source(weibo_listener(weibo_fake, runtime).poll())
    assert (third["statuses"].new, third["statuses"].cursor_before, third["statuses"].cursor_after) == (
        1, posts[-1]["idstr"], late["idstr"])
    assert stored_ids(runtime) == sorted(expected + [late["idstr"]])
    recorded = poll_runs(runtime, "statuses")
    assert [(r.outcome, r.fetched, r.new, r.cursor_after) for r in recorded] == [
        ("ok", 12, 12, posts[-1]["idstr"]), ("ok", 0, 0, posts[-1]["idstr"]), ("ok", 1, 1, late["idstr"])]


def test_twitter_mentions_and_watch_term_search_are_stored_once(twitter_fake, runtime) -> None:
    fan = twitter_fake.add_user("fan", followers=300)
    tweets = [twitter_fake.add_tweet(f"@brand hello {n} 😀 &amp; <b>", fan) for n in range(7)]
    elsewhere = twitter_fake.add_tweet("Trying the new CupZ latte today", fan, mentions_brand=False)
    with runtime.uow() as uow:
        store.add_watch_term("CupZ", "product", uow)
        uow.commit()
    runs = by_source(twitter_listener(twitter_fake, runtime).poll())
    assert (runs["mentions"].outcome, runs["mentions"].new, runs["mentions"].pages) == ("ok", 7, 2)
    assert (runs["search:cupz"].outcome, runs["search:cupz"].new) == ("ok", 1)
    assert stored_ids(runtime, "twitter") == sorted(tweets + [elsewhere])
    assert cursor(runtime, "twitter", twitter_fake.user_id, "mentions") == max(tweets, key=int)
    assert cursor(runtime, "twitter", twitter_fake.user_id, "search:cupz") == elsewhere
    rows = {m.external_id: m for m in mentions(runtime, "twitter")}
    assert rows[tweets[0]].text == "@brand hello 0 😀 &amp; <b>"  # served as &amp;amp; &lt;b&gt;
    assert rows[elsewhere].watch_terms == ["cupz"] and rows[tweets[0]].watch_terms == []

    again = by_source(twitter_listener(twitter_fake, runtime).poll())
    assert (again["mentions"].new, again["search:cupz"].new) == (0, 0)
    assert stored_ids(runtime, "twitter") == sorted(tweets + [elsewhere])


def test_a_search_cursor_older_than_seven_days_searches_the_whole_window(twitter_fake, runtime) -> None:
    from datetime import datetime, timedelta, timezone

    from tests.fakes.twitter_api import snowflake

    fan = twitter_fake.add_user("fan")
    tweet = twitter_fake.add_tweet("CupZ again", fan, mentions_brand=False)
    old, recent = (snowflake(datetime.now(timezone.utc) - timedelta(days=days)) for days in (10, 1))
    with runtime.uow() as uow:
        store.add_watch_term("cupz", "product", uow)
        store.advance_cursor("twitter", twitter_fake.user_id, "search:cupz", old, uow)
        uow.commit()
    run = by_source(twitter_listener(twitter_fake, runtime).poll())["search:cupz"]
    searches = [q for _, path, q in twitter_fake.calls if path == "/2/tweets/search/recent"]
    assert "since_id" not in searches[0] and (run.outcome, run.new, run.cursor_after) == ("ok", 1, tweet)
    with runtime.uow() as uow:
        uow.execute(models.ListeningCursor.__table__.update().values(since_id=recent))
        uow.commit()
    twitter_listener(twitter_fake, runtime).poll()
    searches = [q for _, path, q in twitter_fake.calls if path == "/2/tweets/search/recent"]
    assert searches[-1]["since_id"] == recent


# ---------------------------------------------------------------------------------- failures part way
@pytest.mark.parametrize("failure", ["http_500", "timeout"])
def test_a_failure_mid_pagination_then_a_later_poll_skips_and_duplicates_nothing(weibo_fake, runtime,
                                                                                 failure) -> None:
    first = weibo_fake.mention_post("@品牌官方微博 最早的一条")
    weibo_listener(weibo_fake, runtime).poll()
    posts = [weibo_fake.mention_post(f"@品牌官方微博 第{i}条") for i in range(12)]
    listener = weibo_listener(weibo_fake, runtime)
    path = "/2/statuses/mentions.json"
    fail_from_second_page(weibo_fake, listener, (lambda: weibo_fake.fail_next(2, 500, path)) if failure == "http_500"
                          else (lambda: weibo_fake.timeout_next(2, path=path)))
    run = by_source(listener.poll())["statuses"]
    assert (run.outcome, run.pages, run.new) == ("partial", 1, 5)
    assert run.cursor_after == run.cursor_before == first["idstr"]  # not moved: pages 2 and 3 are unread
    expected_error = "10001 system error" if failure == "http_500" else "no answer from the Weibo API"
    assert expected_error in run.errors[-1]
    assert poll_runs(runtime, "statuses")[-1].outcome == "partial"
    assert poll_runs(runtime, "statuses")[-1].errors == run.errors

    later = by_source(weibo_listener(weibo_fake, runtime).poll())["statuses"]
    assert (later.outcome, later.new, later.cursor_after) == ("ok", 7, posts[-1]["idstr"])
    assert stored_ids(runtime) == sorted([first["idstr"]] + [p["idstr"] for p in posts])


def test_a_429_burst_is_a_rate_limited_run_and_a_later_poll_catches_up(weibo_fake, runtime) -> None:
    posts = [weibo_fake.mention_post(f"@品牌官方微博 第{i}条") for i in range(8)]
    listener = weibo_listener(weibo_fake, runtime)
    fail_from_second_page(weibo_fake, listener, lambda: weibo_fake.rate_limit_next(
        3, status=429, code=None, retry_after=60))
    before = time.time()
    run = by_source(listener.poll())["statuses"]
    assert (run.outcome, run.new, run.cursor_after) == ("rate_limited", 5, None)
    assert before + 59 <= run.rate_limited_until.timestamp() <= time.time() + 61
    assert poll_runs(runtime, "statuses")[-1].rate_limited_until is not None

    calls = len(weibo_fake.calls)
    waiting = by_source(weibo_listener(weibo_fake, runtime).poll())["statuses"]
    assert waiting.skipped and waiting.outcome == "rate_limited"
    assert not [c for c in weibo_fake.calls[calls:] if c[1] == "/2/statuses/mentions.json"]  # it waited

    weibo_fake.rate_limit_next(0)
    weibo_fake._failures.clear()  # the rest of the burst is over by now
    after_reset = by_source(weibo_listener(weibo_fake, runtime, clock=lambda: time.time() + 120).poll())["statuses"]
    assert (after_reset.outcome, after_reset.new, after_reset.cursor_after) == ("ok", 3, posts[-1]["idstr"])
    assert stored_ids(runtime) == sorted(p["idstr"] for p in posts)


def test_a_short_rate_limit_is_waited_out_within_the_poll(weibo_fake, runtime) -> None:
    posts = [weibo_fake.mention_post(f"@品牌官方微博 第{i}条") for i in range(8)]
    sleeps: list[float] = []
    listener = weibo_listener(weibo_fake, runtime)
    listener.sleep = sleeps.append  # the fake's 429s end by count, not by time: no need to really wait
    fail_from_second_page(weibo_fake, listener, lambda: weibo_fake.rate_limit_next(
        2, status=429, code=None, retry_after=20))
    run = by_source(listener.poll(force=True, max_wait=30))["statuses"]
    assert (run.outcome, run.new, run.cursor_after, run.rate_limited_until) == ("ok", 8, posts[-1]["idstr"], None)
    assert len(sleeps) == 2 and all(19 <= s <= 20 for s in sleeps)
    assert [e.endswith("waited 20 s and read again") for e in run.errors] == [True, True]
    assert stored_ids(runtime) == sorted(p["idstr"] for p in posts)
    # A reset further away than max_wait is not waited for.
    weibo_fake.mention_post("@品牌官方微博 又一条")
    weibo_fake.rate_limit_next(1, status=429, code=None, retry_after=600)
    later = by_source(weibo_listener(weibo_fake, runtime).poll(max_wait=30))["statuses"]
    assert later.outcome == "rate_limited" and later.new == 0


def test_a_twitter_429_is_rate_limited_until_the_announced_reset(twitter_fake, runtime) -> None:
    fan = twitter_fake.add_user("fan")
    tweets = [twitter_fake.add_tweet(f"@brand hi {n}", fan) for n in range(3)]
    reset = twitter_fake.rate_limit_next(1, reset_in=300)
    run = by_source(twitter_listener(twitter_fake, runtime).poll())["mentions"]
    assert (run.outcome, run.new, run.rate_limited_until.timestamp()) == ("rate_limited", 0, reset)
    forced = by_source(twitter_listener(twitter_fake, runtime).poll(force=True))["mentions"]
    assert (forced.outcome, forced.new) == ("ok", 3) and stored_ids(runtime, "twitter") == sorted(tweets)


def test_a_revoked_token_is_recorded_as_auth_expired_without_a_crash(weibo_fake, runtime) -> None:
    posts = [weibo_fake.mention_post(f"@品牌官方微博 第{i}条") for i in range(8)]
    listener = weibo_listener(weibo_fake, runtime)
    fail_from_second_page(weibo_fake, listener, weibo_fake.revoke_token)  # revoked during the run
    runs = by_source(listener.poll())
    assert (runs["statuses"].outcome, runs["statuses"].new, runs["statuses"].cursor_after) == ("auth_expired", 5, None)
    assert TOKEN_SETTING in runs["statuses"].errors[0] and "21332" in runs["statuses"].errors[0]
    assert runs["comments"].outcome == "auth_expired" and runs["followers"].outcome == "auth_expired"
    assert [r.outcome for r in poll_runs(runtime, "statuses")] == ["auth_expired"]
    assert len(stored_ids(runtime)) == 5
    weibo_fake._revoked = False  # the operator sets a new token
    later = by_source(weibo_listener(weibo_fake, runtime).poll())["statuses"]
    assert (later.outcome, later.new) == ("ok", 3) and stored_ids(runtime) == sorted(p["idstr"] for p in posts)


# ---------------------------------------------------------------------------------- bad input
def test_deleted_posts_missing_users_long_texts_entities_and_emoji(weibo_fake, runtime) -> None:
    kept = weibo_fake.mention_post("<新品> & \"优惠\" 😀 @品牌官方微博")
    gone = weibo_fake.mention_post("@品牌官方微博 会被删掉")
    weibo_fake.delete_status(gone["id"])
    nobody = weibo_fake.mention_post("@品牌官方微博 作者被封号了", no_user=True)
    long_text = "@品牌官方微博 很长的一条：" + "新品真好喝" * 40
    long_post = weibo_fake.mention_post(long_text)
    comment = weibo_fake.mention_comment("@品牌官方微博 评论 😀😀", no_user=True)
    runs = by_source(weibo_listener(weibo_fake, runtime).poll())
    assert runs["statuses"].outcome == "ok" and runs["statuses"].new == 4
    rows = {m.external_id: m for m in mentions(runtime)}
    assert rows[kept["idstr"]].text == "<新品> & \"优惠\" 😀 @品牌官方微博"
    assert rows[kept["idstr"]].customer_id is not None and rows[kept["idstr"]].sentiment in ("pos", "neu", "neg")
    assert (rows[gone["idstr"]].deleted, rows[gone["idstr"]].text, rows[gone["idstr"]].customer_id) == (True, "", None)
    assert (rows[nobody["idstr"]].author_id, rows[nobody["idstr"]].customer_id) == (None, None)
    assert rows[long_post["idstr"]].truncated and len(rows[long_post["idstr"]].text) < len(long_text)
    assert (rows[comment["idstr"]].text, rows[comment["idstr"]].kind) == ("@品牌官方微博 评论 😀😀", "comment")
    assert rows[comment["idstr"]].reply_ref == f"{comment['status']['idstr']}/{comment['idstr']}"
    assert cursor(runtime, "weibo", weibo_fake.uid, "statuses") == long_post["idstr"]
    assert all(r.ticket_id is None and r.lead_id is None for r in rows.values())


def test_a_twitter_author_missing_from_includes_is_noted_and_the_tweet_kept(twitter_fake, runtime) -> None:
    gone = twitter_fake.add_user("suspended")
    tweet = twitter_fake.add_tweet("@brand still here", gone)
    twitter_fake.delete_user(gone)
    run = by_source(twitter_listener(twitter_fake, runtime).poll())["mentions"]
    assert (run.outcome, run.new) == ("ok", 1)
    assert any(gone in error for error in run.errors) and poll_runs(runtime, "mentions")[-1].errors == run.errors
    (row,) = mentions(runtime, "twitter")
    assert (row.external_id, row.author_id, row.author_screen_name) == (tweet, gone, None)


def test_one_author_is_one_customer_across_their_mentions(weibo_fake, runtime) -> None:
    fan = weibo_fake.add_user("老顾客", followers=88)
    weibo_fake.mention_post("@品牌官方微博 第一条", fan)
    weibo_fake.mention_post("@品牌官方微博 第二条", fan)
    weibo_fake.mention_comment("@品牌官方微博 评论", fan)
    weibo_listener(weibo_fake, runtime).poll()
    rows = mentions(runtime)
    assert len(rows) == 3 and len({r.customer_id for r in rows}) == 1 and rows[0].customer_id is not None
    with runtime.uow() as uow:
        identities = list(uow.session.scalars(select(models.ChannelIdentity).filter_by(channel="weibo")))
        customer = uow.session.get(models.Customer, rows[0].customer_id)
    assert [(i.account, i.external_id, i.customer_id) for i in identities] == [
        (weibo_fake.uid, fan["idstr"], rows[0].customer_id)]
    assert customer.display_name == "老顾客"


# ---------------------------------------------------------------------------------- rules
def test_a_complaint_becomes_a_ticket_linked_both_ways_with_priority_for_influence(weibo_fake, runtime) -> None:
    star = weibo_fake.add_user("大V", followers=250_000, verified=True)
    small = weibo_fake.add_user("小号", followers=12)
    loud = weibo_fake.mention_post(COMPLAINT, star)
    quiet = weibo_fake.mention_post(COMPLAINT, small)  # the same words by an author few read
    praise = weibo_fake.mention_post("@品牌官方微博 新品真好喝", small)
    calm = weibo_fake.mention_post("@品牌官方微博 奶茶里有头发，要投诉", small)
    bitter = weibo_fake.mention_post("@品牌官方微博 外卖超时一个小时，奶茶都凉了，很失望", small)
    run = by_source(weibo_listener(weibo_fake, runtime).poll())["statuses"]
    assert (run.tickets, run.leads) == (4, 0)
    rows = {m.external_id: m for m in mentions(runtime)}
    with runtime.uow() as uow:
        tickets = {t.id: t for t in uow.session.scalars(select(models.Ticket))}
        back = store.mention_of(uow, ticket_id=rows[loud["idstr"]].ticket_id)
    loud_ticket, quiet_ticket = tickets[rows[loud["idstr"]].ticket_id], tickets[rows[quiet["idstr"]].ticket_id]
    assert back is not None and back.external_id == loud["idstr"]
    assert (loud_ticket.source, loud_ticket.category, loud_ticket.status) == ("mention", "foreign_object", "open")
    assert loud_ticket.customer_id == rows[loud["idstr"]].customer_id and COMPLAINT in loud_ticket.description
    # Angry words make it P2 (bot.yaml's priority rules); 250,000 followers one step more.
    assert (loud_ticket.priority, quiet_ticket.priority) == ("P1", "P2")
    # No angry word, but a sentiment score under priority.strong_negative_score: one step up too.
    calm_ticket, bitter_ticket = tickets[rows[calm["idstr"]].ticket_id], tickets[rows[bitter["idstr"]].ticket_id]
    assert (calm_ticket.priority, calm_ticket.category, bitter_ticket.priority, bitter_ticket.category) == (
        "P3", "foreign_object", "P2", "delivery")
    assert loud_ticket.first_response_due < quiet_ticket.first_response_due
    assert rows[praise["idstr"]].ticket_id is None and rows[praise["idstr"]].lead_id is None
    assert rows[loud["idstr"]].sentiment == "neg" and rows[loud["idstr"]].intent == "complaint"
    # The page's four tickets were numbered together: four consecutive references of the day.
    numbers = sorted(int(t.reference.split("-")[1]) for t in tickets.values())
    assert numbers == list(range(numbers[0], numbers[0] + 4))


def test_purchase_intent_becomes_a_lead_on_weibo_and_twitter(weibo_fake, twitter_fake, runtime) -> None:
    fan = weibo_fake.add_user("想开店的人", followers=40)
    post = weibo_fake.mention_post("@品牌官方微博 想加盟你们品牌，怎么联系", fan)
    user = twitter_fake.add_user("eventplanner", followers=900)
    tweet = twitter_fake.add_tweet("@brand we'd like to order 200 cups for an event", user)
    chat = twitter_fake.add_tweet("@brand nice weather today", user)
    assert by_source(weibo_listener(weibo_fake, runtime).poll())["statuses"].leads == 1
    assert by_source(twitter_listener(twitter_fake, runtime).poll())["mentions"].leads == 1
    with runtime.uow() as uow:
        leads = list(uow.session.scalars(select(models.Lead).order_by(models.Lead.id)))
        rows = {m.external_id: m for m in uow.session.scalars(select(models.Mention))}
        back = store.mention_of(uow, lead_id=leads[0].id)
    assert [(lead.source_channel, lead.name, lead.phone, lead.status) for lead in leads] == [
        ("weibo", "想开店的人", "", "new"), ("twitter", "eventplanner", "", "new")]
    assert leads[0].keyword and "加盟" in leads[0].interest and "200 cups" in leads[1].interest
    assert rows[post["idstr"]].lead_id == leads[0].id and rows[tweet].lead_id == leads[1].id
    assert back is not None and back.external_id == post["idstr"]
    assert leads[0].customer_id == rows[post["idstr"]].customer_id
    assert rows[chat].lead_id is None and rows[chat].ticket_id is None


def test_one_authors_mentions_on_a_page_and_later_make_one_lead_with_each_interest(weibo_fake, runtime) -> None:
    fan = weibo_fake.add_user("回头客", followers=30)
    other = weibo_fake.add_user("另一位", followers=30)
    texts = ["@品牌官方微博 想加盟你们品牌，怎么联系", "@品牌官方微博 团购五十杯可以吗", "@品牌官方微博 还想问代理的事"]
    first, second = (weibo_fake.mention_post(text, fan) for text in texts[:2])  # one page
    apart = weibo_fake.mention_post("@品牌官方微博 想加盟，联系方式是？", other)
    assert by_source(weibo_listener(weibo_fake, runtime).poll())["statuses"].leads == 3
    later = weibo_fake.mention_post(texts[2], fan)
    assert by_source(weibo_listener(weibo_fake, runtime).poll())["statuses"].leads == 1
    with runtime.uow() as uow:
        leads = list(uow.session.scalars(select(models.Lead).order_by(models.Lead.id)))
        rows = {m.external_id: m for m in uow.session.scalars(select(models.Mention))}
    lead, apart_lead = (next(lead for lead in leads if lead.id == rows[p["idstr"]].lead_id) for p in (first, apart))
    assert len(leads) == 2 and [rows[p["idstr"]].lead_id for p in (first, second, later)] == [lead.id] * 3
    # The page's two in the order they were stored (newest first), then the later one.
    assert lead.interest.split("\n") == [texts[1], texts[0], texts[2]] and lead.name == "回头客"
    assert (apart_lead.customer_id, apart_lead.interest) == (rows[apart["idstr"]].customer_id, apart["text"])
    assert lead.customer_id == rows[first["idstr"]].customer_id != apart_lead.customer_id


def test_a_lead_by_hand_joins_the_authors_open_lead_of_that_channel(runtime) -> None:
    with runtime.uow() as uow:
        customer = store.author_customer("weibo", "5100000001", "1000000888", "粉丝", uow)
        lead, new = store.mention_lead(customer, uow, name="粉丝", interest="加盟", source_channel="weibo")
        again, new_again = store.mention_lead(customer, uow, name="粉丝", interest="团购", source_channel="weibo")
        same, _ = store.mention_lead(customer, uow, name="粉丝", interest="加盟", source_channel="weibo")
        elsewhere, new_elsewhere = store.mention_lead(customer, uow, name="粉丝", interest="加盟",
                                                      source_channel="twitter")
        uow.commit()
    assert (new, new_again, new_elsewhere) == (True, False, True)
    assert again.id == same.id == lead.id != elsewhere.id and same.interest == "加盟\n团购"


def test_a_page_of_tickets_takes_consecutive_references_between_single_ones(runtime) -> None:
    from crm_store.references import next_reference, next_references

    with runtime.uow() as uow:
        taken = [next_reference("T", uow), *next_references("T", 3, uow), next_reference("T", uow)]
        assert next_references("T", 0, uow) == []
        uow.commit()
    days, numbers = {r.split("-")[0] for r in taken}, [int(r.split("-")[1]) for r in taken]
    assert len(days) == 1 and numbers == list(range(numbers[0], numbers[0] + 5))


# ---------------------------------------------------------------------------------- followers, config, CLI
def test_followers_are_snapshot_once_per_day(weibo_fake, runtime) -> None:
    weibo_listener(weibo_fake, runtime).poll()
    weibo_fake.brand["followers_count"] = 20000
    weibo_listener(weibo_fake, runtime).poll()
    with runtime.uow() as uow:
        snapshots = list(uow.session.scalars(select(models.FollowerSnapshot)))
    assert [(s.channel, s.account, s.followers) for s in snapshots] == [("weibo", weibo_fake.uid, 12345)]
    assert len([c for c in weibo_fake.calls if c[1] == "/2/users/show.json"]) == 1


def test_a_bad_listening_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "listening.yaml"
    bad.write_text(LISTENING_FILE.read_text(encoding="utf-8").replace("influential_followers: 10000",
                                                                     "influential_followers: many"))
    with pytest.raises(ConfigError, match=r"listening.yaml: 'priority.influential_followers' must be an integer"):
        load_listening(bad)
    bad.write_text("lead: [\n")
    with pytest.raises(ConfigError, match=r"listening.yaml:\d+"):
        load_listening(bad)


def test_crmbot_poll_weibo_prints_what_it_fetched(weibo_fake, settings, runtime, monkeypatch) -> None:
    posts = [weibo_fake.mention_post(f"@品牌官方微博 第{i}条") for i in range(3)]
    env = {"CRMBOT_VAR_DIR": str(settings.var_dir), "CRMBOT_DATABASE_URL": settings.database_url,
           "CRMBOT_REDIS_URL": settings.redis_url, "CRMBOT_SECRET_KEY": settings.secret_key,
           "CRMBOT_WEIBO_ACCESS_TOKEN": weibo_fake.access_token, "CRMBOT_WEIBO_UID": weibo_fake.uid,
           "CRMBOT_WEIBO_API_BASE": weibo_fake.base_url}
    for name in list(os.environ):
        if name.startswith("CRMBOT_"):
            monkeypatch.delenv(name)
    first = CliRunner().invoke(main, ["poll", "weibo"], env=env)
    assert first.exit_code == 0, first.output
    assert f"statuses: ok, fetched 3, new 3, leads 0, tickets 0, errors 0, cursor - -> {posts[-1]['idstr']}" \
        in first.output
    second = CliRunner().invoke(main, ["poll", "weibo"], env=env)
    assert second.exit_code == 0 and "statuses: ok, fetched 0, new 0" in second.output
    assert stored_ids(runtime) == sorted(p["idstr"] for p in posts)
    weibo_fake.revoke_token()
    revoked = CliRunner().invoke(main, ["poll", "weibo"], env=env)
    assert revoked.exit_code == 1 and "statuses: auth_expired" in revoked.output and TOKEN_SETTING in revoked.output
    with runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(models.Mention)) == 3


def test_the_scheduled_job_polls_the_configured_account_once_at_a_time(weibo_fake, tmp_path, database_url,
                                                                       redis_url, redis, monkeypatch) -> None:
    from tests.conftest import make_settings
    from workers import jobs
    from workers.listening import configured_channels, poll_channel

    settings = make_settings(tmp_path, database_url, redis_url, weibo_access_token=weibo_fake.access_token,
                             weibo_uid=weibo_fake.uid, weibo_api_base=weibo_fake.base_url)
    assert configured_channels(settings) == ["weibo"]  # what `crmbot scheduler` registers on rq cron
    post = weibo_fake.mention_post("@品牌官方微博 定时任务")
    rt = Runtime.build(settings)
    monkeypatch.setattr(jobs, "RUNTIME", rt)
    try:
        held = rt.redis.lock("crmbot:poll:weibo", timeout=30)
        assert held.acquire(blocking=False)
        assert poll_channel("weibo") == []  # another poll of the account is running: this one does nothing
        assert weibo_fake.mention_calls("statuses") == []
        held.release()
        outcome = {r["source"]: r for r in poll_channel("weibo")}
        assert (outcome["statuses"]["outcome"], outcome["statuses"]["new"], outcome["statuses"]["cursor"]) == (
            "ok", 1, post["idstr"])
        assert stored_ids(rt) == [post["idstr"]]
    finally:
        rt.engine.dispose()


def test_two_pollers_storing_one_page_at_once_store_it_once(runtime) -> None:
    """The second waits for the first's unique keys (proven by the lock waiter), then finds every
    mention and the new author stored: nothing twice, no second customer for one person."""
    import threading
    from datetime import datetime, timezone

    from channels.base import Mention as PageMention
    from tests.lock_waits import wait_for_lock_waiter

    now = datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)
    page = [PageMention("weibo", "5100000001", str(2**60 + n), "post", f"@品牌官方微博 同一页 {n}", now,
                        author_id="1000000777", author_screen_name="同一个人") for n in range(2)]
    second: dict[str, Any] = {}

    def other_poller() -> None:
        with runtime.uow() as uow:
            second["stored"] = store.store_mentions(page, uow)
            uow.commit()

    with runtime.uow() as first:
        stored = store.store_mentions(page, first)
        thread = threading.Thread(target=other_poller)
        thread.start()
        wait_for_lock_waiter(runtime.engine)
        first.commit()
    thread.join(10)
    assert [s.mention.external_id for s in stored] == [m.external_id for m in page]
    assert second["stored"] == []
    with runtime.uow() as uow:
        rows = list(uow.session.scalars(select(models.Mention)))
        customers = uow.session.scalar(select(func.count()).select_from(models.Customer))
        identities = uow.session.scalar(select(func.count()).select_from(models.ChannelIdentity))
    assert sorted(r.external_id for r in rows) == sorted(m.external_id for m in page)
    assert (customers, identities, {r.customer_id for r in rows}) == (1, 1, {stored[0].customer_id})
