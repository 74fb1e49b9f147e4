"""The real Twitter adapter (tweepy's v2 ``Client``) against a local fake of the v2 API, reached
through the URL-rewriting transport adapter: paging, since_id, search, replies, followers, and the
errors a poller and the send job must tell apart."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest

from channels.base import (AuthExpired, ChannelError, OutboundMessage, QuotaExceeded, RateLimited,
                           RecipientUnreachable, SendFailed, SendOutcomeUnknown)
from channels.twitter import REPLY, TwitterClient, TwitterSender
from config import load_settings
from tests.fakes.twitter_api import FakeTwitterAPI

START = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


@pytest.fixture()
def fake() -> Iterator[FakeTwitterAPI]:
    with FakeTwitterAPI() as api:
        yield api


class Sleeps(list):
    """Records the backoff the client asks for instead of waiting it out."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture()
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture()
def client(fake: FakeTwitterAPI, sleeps: Sleeps) -> TwitterClient:
    """Built as the service builds it: from CRMBOT_* settings, the API base pointing at the fake."""
    settings = load_settings({
        "CRMBOT_SECRET_KEY": "s" * 32, "CRMBOT_TWITTER_BEARER_TOKEN": fake.bearer_token,
        "CRMBOT_TWITTER_USER_ID": fake.user_id, "CRMBOT_TWITTER_API_BASE": fake.base_url,
        "CRMBOT_TWITTER_CONSUMER_KEY": fake.consumer_key, "CRMBOT_TWITTER_CONSUMER_SECRET": "consumer-secret",
        "CRMBOT_TWITTER_ACCESS_TOKEN": "1500000000000000001-accesstoken",
        "CRMBOT_TWITTER_ACCESS_TOKEN_SECRET": "access-secret"})
    return TwitterClient.from_settings(settings, timeout=2, retries=2, backoff=(0.5, 2.0), sleep=sleeps)


def seed(fake: FakeTwitterAPI, count: int, start: datetime = START, text: str = "@brand hello {n}") -> list[str]:
    author = fake.add_user("fan", followers=250)
    return [fake.add_tweet(text.format(n=n), author, created_at=start + timedelta(minutes=n)) for n in range(count)]


def mention_calls(fake: FakeTwitterAPI) -> list[dict[str, str]]:
    return [query for method, path, query in fake.calls if path.endswith("/mentions")]


def test_mentions_paginate_newest_first_over_every_seeded_tweet(fake, client) -> None:
    ids = seed(fake, 12)
    pages = list(client.mentions(max_results=5))
    assert [len(page.mentions) for page in pages] == [5, 5, 2]
    got = [m.external_id for page in pages for m in page.mentions]
    assert got == sorted(ids, key=int, reverse=True)
    assert all(int(i) > 2**53 for i in got)
    calls = mention_calls(fake)
    assert "pagination_token" not in calls[0]
    assert [c["pagination_token"] for c in calls[1:]] == [pages[0].next_token, pages[1].next_token]
    assert pages[-1].next_token is None and pages[0].newest_id == got[0]
    assert calls[0]["expansions"] == "author_id"
    assert set(calls[0]["user.fields"].split(",")) >= {"public_metrics", "verified", "username"}
    assert set(calls[0]["tweet.fields"].split(",")) >= {
        "created_at", "public_metrics", "conversation_id", "in_reply_to_user_id", "referenced_tweets"}


def test_since_id_returns_only_newer_mentions(fake, client) -> None:
    seed(fake, 4)
    cursor = next(client.mentions()).newest_id
    newer = seed(fake, 3, start=START + timedelta(hours=1), text="@brand later {n}")
    again = [m.external_id for page in client.mentions(since_id=cursor) for m in page.mentions]
    assert sorted(again, key=int) == newer
    assert mention_calls(fake)[-1]["since_id"] == cursor
    assert list(client.mentions(since_id=max(newer, key=int)))[0].mentions == ()


def test_a_mention_carries_its_author_counts_and_text_over_the_wire(fake, client) -> None:
    author = fake.add_user("angry_customer", followers=98765, verified=True)
    complaint = fake.add_tweet("@brand AT&T <said> my order is late 😡 & nobody answers", author,
                               created_at=START, retweet_count=4, quote_count=1, reply_count=6, like_count=30)
    reply = fake.add_tweet("@brand still waiting", author, created_at=START + timedelta(minutes=1),
                           in_reply_to=complaint)
    long_text = "@brand " + "the battery dies after an hour. " * 12
    long = fake.add_tweet(long_text, author, created_at=START + timedelta(minutes=2))
    by_id = {m.external_id: m for page in client.mentions() for m in page.mentions}
    first = by_id[complaint]
    assert first.text == "@brand AT&T <said> my order is late 😡 & nobody answers"
    assert (first.author_id, first.author_screen_name, first.author_followers, first.author_verified) == \
        (author, "angry_customer", 98765, True)
    assert (first.reposts, first.comments, first.likes) == (5, 6, 30)
    assert first.created_at == START and first.kind == "post"
    assert (by_id[reply].kind, by_id[reply].in_reply_to) == (REPLY, complaint)
    assert len(long_text) > 280 and by_id[long].text == long_text


def test_a_suspended_author_leaves_the_mention_without_an_author(fake, client) -> None:
    gone = fake.add_user("suspended")
    stays = fake.add_user("stays", followers=3)
    lost = fake.add_tweet("@brand from a suspended account", gone, created_at=START)
    kept = fake.add_tweet("@brand hi", stays, created_at=START + timedelta(minutes=1))
    fake.delete_user(gone)
    page = client.mentions_page()
    by_id = {m.external_id: m for m in page.mentions}
    assert by_id[lost].author_id == gone and by_id[lost].author_screen_name is None
    assert by_id[kept].author_followers == 3
    assert any(gone in problem for problem in page.problems)


def test_a_deleted_tweet_is_no_longer_listed(fake, client) -> None:
    first, second = seed(fake, 2)
    fake.delete_tweet(first)
    assert [m.external_id for m in client.mentions_page().mentions] == [second]


def test_search_finds_watch_terms_after_since_id(fake, client) -> None:
    author = fake.add_user("shopper", followers=42)
    hit = fake.add_tweet("Thinking of buying the Acme Phone X", author, created_at=START, mentions_brand=False)
    fake.add_tweet("nothing to see", author, created_at=START + timedelta(minutes=1), mentions_brand=False)
    page = client.search_page("acme phone")
    assert [m.external_id for m in page.mentions] == [hit]
    assert page.mentions[0].author_screen_name == "shopper"
    later = fake.add_tweet("acme phone or the other one?", author, created_at=START + timedelta(minutes=2),
                           mentions_brand=False)
    assert [m.external_id for p in client.search("acme phone", since_id=hit) for m in p.mentions] == [later]
    searches = [q for _, path, q in fake.calls if path == "/2/tweets/search/recent"]
    assert searches[0]["query"] == "acme phone" and searches[-1]["since_id"] == hit


def test_search_pages_with_next_token(fake, client) -> None:
    author = fake.add_user("shopper")
    ids = [fake.add_tweet(f"acme {n}", author, created_at=START + timedelta(seconds=n), mentions_brand=False)
           for n in range(15)]
    pages = list(client.search("acme", max_results=10))
    assert [len(p.mentions) for p in pages] == [10, 5]
    assert sorted((m.external_id for p in pages for m in p.mentions), key=int) == ids
    searches = [q for _, path, q in fake.calls if path == "/2/tweets/search/recent"]
    assert searches[1]["next_token"] == pages[0].next_token


def test_429_is_rate_limited_until_the_announced_reset_without_sleeping(fake, client, sleeps) -> None:
    seed(fake, 3)
    reset = fake.rate_limit_next(1, reset_in=600)
    with pytest.raises(RateLimited) as limited:
        client.mentions_page()
    assert limited.value.reset_at == reset
    assert sleeps == [] and len(mention_calls(fake)) == 1
    assert len(client.mentions_page().mentions) == 3  # once the window has passed, it reads again


def test_429_in_the_middle_of_paging_stops_after_the_pages_already_read(fake, client) -> None:
    seed(fake, 8)
    pages = client.mentions(max_results=5)
    first = next(pages)
    fake.rate_limit_next(1)
    with pytest.raises(RateLimited):
        next(pages)
    assert len(first.mentions) == 5 and first.next_token is not None


def test_a_revoked_bearer_token_is_auth_expired_naming_the_setting(fake, client, sleeps) -> None:
    seed(fake, 1)
    fake.revoke_bearer_token()
    with pytest.raises(AuthExpired, match="CRMBOT_TWITTER_BEARER_TOKEN") as expired:
        client.mentions_page()
    assert expired.value.code == 401
    with pytest.raises(AuthExpired, match="CRMBOT_TWITTER_BEARER_TOKEN"):
        client.followers()
    assert sleeps == [] and len(fake.calls) == 2  # not retried


def test_a_wrong_bearer_token_is_auth_expired(fake, sleeps) -> None:
    client = TwitterClient("not-the-token", fake.user_id, api_base=fake.base_url, sleep=sleeps)
    with pytest.raises(AuthExpired):
        client.mentions_page()


def test_a_500_then_success_is_retried_after_a_backoff(fake, client, sleeps) -> None:
    ids = seed(fake, 2)
    fake.fail_next(1, 500)
    page = client.mentions_page()
    assert sorted(m.external_id for m in page.mentions) == sorted(ids)
    assert len(mention_calls(fake)) == 2 and sleeps == [0.5]


def test_5xx_beyond_the_retries_is_a_channel_error(fake, client, sleeps) -> None:
    seed(fake, 1)
    fake.fail_next(3, 503)
    with pytest.raises(ChannelError, match="3 times, last: HTTP 503"):
        client.mentions_page()
    assert len(mention_calls(fake)) == 3 and sleeps == [0.5, 2.0]


def test_a_500_in_the_middle_of_paging_is_retried_and_paging_goes_on(fake, client) -> None:
    ids = seed(fake, 12)
    pages = client.mentions(max_results=5)
    first = next(pages)
    fake.fail_next(1, 502)
    rest = list(pages)
    got = [m.external_id for page in (first, *rest) for m in page.mentions]
    assert sorted(got, key=int) == ids


def test_an_unreachable_api_is_retried_then_a_channel_error(sleeps) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = TwitterClient("token", "1", api_base=f"http://127.0.0.1:{port}/", retries=1, backoff=(0.1,),
                           sleep=sleeps, consumer_key="k", consumer_secret="s", access_token="a",
                           access_token_secret="t")
    with pytest.raises(ChannelError, match="2 times, last: ConnectionError"):
        client.mentions_page()
    assert sleeps == [0.1]
    with pytest.raises(SendFailed) as failure:  # never connected: the tweet cannot exist
        client.reply("hello", "1460323737035677698")
    assert type(failure.value) is SendFailed


def test_followers_from_get_user(fake, client) -> None:
    assert client.followers() == 4321
    other = fake.add_user("someone", followers=77)
    assert client.followers(other) == 77
    lookups = [q for _, path, q in fake.calls if path.startswith("/2/users/") and "mentions" not in path]
    assert lookups[0]["user.fields"] == "public_metrics"
    with pytest.raises(ChannelError, match="Could not find user"):
        client.followers("999")


# ---------------------------------------------------------------- replies


def public_reply(tweet_id: str, text: str = "Sorry about that! We have sent you a DM 🙏") -> OutboundMessage:
    return OutboundMessage("twitter", "1500000000000000001", "1152921504606846977", text,
                           idempotency_key="reply-1", reply_to=tweet_id)


def test_a_reply_reaches_the_fake_with_its_text_target_and_oauth_header(fake, client) -> None:
    (tweet,) = seed(fake, 1)
    posted_id = TwitterSender(client).send(public_reply(tweet))
    (posted,) = fake.posted
    assert posted["id"] == posted_id and int(posted_id) > 2**53
    assert posted["text"] == "Sorry about that! We have sent you a DM 🙏"
    assert posted["in_reply_to_tweet_id"] == tweet
    assert posted["json"] == {"text": posted["text"], "reply": {"in_reply_to_tweet_id": tweet}}
    assert posted["authorization"].startswith("OAuth ")
    assert f'oauth_consumer_key="{fake.consumer_key}"' in posted["authorization"]
    assert 'oauth_token="1500000000000000001-accesstoken"' in posted["authorization"]


def test_revoked_user_keys_are_auth_expired_and_a_send_failure_for_the_job(fake, client) -> None:
    (tweet,) = seed(fake, 1)
    fake.revoke_user_keys()
    with pytest.raises(AuthExpired, match="CRMBOT_TWITTER_ACCESS_TOKEN"):
        client.reply("hi", tweet)
    with pytest.raises(SendFailed, match="CRMBOT_TWITTER_ACCESS_TOKEN") as failure:
        TwitterSender(client).send(public_reply(tweet))
    assert failure.value.code == 401 and fake.posted == []


def test_a_5xx_on_the_reply_is_an_unknown_outcome_and_not_retried(fake, client, sleeps) -> None:
    (tweet,) = seed(fake, 1)
    fake.fail_next(1, 503)
    with pytest.raises(SendOutcomeUnknown, match="503"):
        TwitterSender(client).send(public_reply(tweet))
    assert [c for c in fake.calls if c[0] == "POST"] == [("POST", "/2/tweets", {})] and sleeps == []


def test_a_reply_without_an_answer_is_an_unknown_outcome(fake, client) -> None:
    (tweet,) = seed(fake, 1)
    fake.post_delay = 3.0  # longer than the client's 2 s timeout
    with pytest.raises(SendOutcomeUnknown, match="ReadTimeout"):
        TwitterSender(client).send(public_reply(tweet))
    assert [p["in_reply_to_tweet_id"] for p in fake.posted] == [tweet]  # it did land


def test_a_reply_to_a_deleted_tweet_is_unreachable(fake, client) -> None:
    (tweet,) = seed(fake, 1)
    fake.delete_tweet(tweet)
    with pytest.raises(RecipientUnreachable, match="deleted"):
        TwitterSender(client).send(public_reply(tweet))
    assert fake.posted == []


def test_a_429_on_the_reply_is_quota_exceeded(fake, client) -> None:
    (tweet,) = seed(fake, 1)
    fake.rate_limit_next(1)
    with pytest.raises(QuotaExceeded, match="rate limit"):
        TwitterSender(client).send(public_reply(tweet))
    assert fake.posted == []
