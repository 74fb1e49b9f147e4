"""The real Weibo adapter (channels/weibo.py) over HTTP against tests/fakes/weibo_api.FakeWeiboAPI:
paging with since_id/max_id, rate limits, a revoked token, retries of 5xx and timeouts on reads,
no blind retry of a comment, and public replies reaching the platform with the right parameters."""
from __future__ import annotations

import socket
import time
from typing import Iterator

import pytest

from channels.base import (COMMENT, POST, AuthExpired, OutboundMessage, RateLimited, SendFailed,
                           SendOutcomeUnknown)
from channels.weibo import NAME, TOKEN_SETTING, WeiboAPIError, WeiboClient, WeiboSender
from tests.fakes.weibo_api import FakeWeiboAPI

NOW = 1_700_000_100.0  # 22:15 UTC; the next full hour is 1_700_002_800
NEXT_HOUR = 1_700_002_800.0
READ_TIMEOUT = 0.3
RETRIES = 2


@pytest.fixture()
def fake() -> Iterator[FakeWeiboAPI]:
    with FakeWeiboAPI() as api:
        api.timeout_seconds = READ_TIMEOUT * 4
        yield api


def client(fake: FakeWeiboAPI, token: str | None = None, retries: int = RETRIES) -> WeiboClient:
    return WeiboClient(token or fake.access_token, fake.base_url, fake.uid, connect_timeout=1.0,
                       read_timeout=READ_TIMEOUT, retries=retries, backoff=0, clock=lambda: NOW)


def all_ids(api: WeiboClient, kind: str, since_id: str | None, count: int) -> list[str]:
    return [m.external_id for page in api.mention_pages(kind, since_id=since_id, count=count) for m in page.mentions]


def public_reply(reply_to: str | None, text: str) -> OutboundMessage:
    return OutboundMessage(NAME, "5100000001", "1000000002", text, idempotency_key=text, reply_to=reply_to)


# ---------------------------------------------------------------------------------- paging
@pytest.mark.parametrize("kind", [POST, COMMENT])
def test_every_mention_after_the_cursor_comes_once_across_pages(fake: FakeWeiboAPI, kind: str) -> None:
    seed = fake.mention_post if kind == POST else fake.mention_comment
    seeded = [seed(f"@品牌官方微博 第{i}条") for i in range(10)]
    since_id = seeded[2]["idstr"]
    expected = [s["idstr"] for s in reversed(seeded[3:])]  # newest first

    assert all_ids(client(fake), kind, since_id, count=3) == expected
    calls = fake.mention_calls("statuses" if kind == POST else "comments")
    assert len(calls) == 4  # 3 + 3 + 1, then an empty page
    assert all(call["since_id"] == since_id for call in calls)
    assert [call.get("max_id") for call in calls] == [
        None, str(int(expected[2]) - 1), str(int(expected[5]) - 1), str(int(expected[6]) - 1)]


def test_a_mention_arriving_while_paging_is_neither_repeated_nor_lost(fake: FakeWeiboAPI) -> None:
    seeded = [fake.mention_post(f"旧的 {i}") for i in range(5)]
    api = client(fake)
    seen: list[str] = []
    pages = api.mention_pages(POST, since_id=None, count=2)
    seen += [m.external_id for m in next(pages).mentions]
    late = fake.mention_post("翻页时新来的")  # would shift page 2 under page= paging
    seen += [m.external_id for page in pages for m in page.mentions]
    assert seen == [s["idstr"] for s in reversed(seeded)]
    # The next poll, from the newest id of this one, finds exactly the late one.
    assert all_ids(api, POST, since_id=seen[0], count=2) == [late["idstr"]]


def test_ids_above_2_53_and_texts_arrive_exact(fake: FakeWeiboAPI) -> None:
    fan = fake.add_user("大V用户", followers=2_500_000, verified=True)
    status = fake.mention_post("<新品> & \"优惠\" 😀 @品牌官方微博", fan, reposts=3, comments=4, likes=5)
    long_text = "很长的投诉：" + "质量问题" * 60
    long_post = fake.mention_post(long_text)
    (newest, first), = [page.mentions for page in client(fake).mention_pages(POST) if page.mentions]
    assert first.external_id == status["idstr"] and int(first.external_id) > 2**53
    assert first.text == "<新品> & \"优惠\" 😀 @品牌官方微博"
    assert (first.author_id, first.author_screen_name, first.author_followers, first.author_verified) == (
        fan["idstr"], "大V用户", 2_500_000, True)
    assert (first.reposts, first.comments, first.likes) == (3, 4, 5)
    assert newest.external_id == long_post["idstr"] and newest.truncated and newest.text != long_text
    whole = client(fake).status(newest.external_id)
    assert whole.text == long_text and not whole.truncated


def test_deleted_posts_and_missing_users_come_through_flagged(fake: FakeWeiboAPI) -> None:
    kept = fake.mention_post("还在的")
    gone = fake.mention_post("会被删的")
    anonymous = fake.mention_post("没有用户的", no_user=True)
    fake.delete_status(gone["id"])
    mentions = {m.external_id: m for page in client(fake).mention_pages(POST) for m in page.mentions}
    assert set(mentions) == {kept["idstr"], gone["idstr"], anonymous["idstr"]}
    assert mentions[gone["idstr"]].deleted and mentions[gone["idstr"]].text == ""
    assert not mentions[kept["idstr"]].deleted
    assert mentions[anonymous["idstr"]].author_id is None and mentions[anonymous["idstr"]].text == "没有用户的"
    with pytest.raises(WeiboAPIError) as failure:
        client(fake).status(gone["idstr"])
    assert failure.value.code == 20101


# ---------------------------------------------------------------------------------- rate limits and tokens
@pytest.mark.parametrize("status, code", [(403, 10023), (429, 10022), (403, 10024)])
def test_a_rate_limit_is_raised_with_the_next_hour_and_not_retried(fake: FakeWeiboAPI, status: int,
                                                                    code: int) -> None:
    fake.mention_post("一条")
    fake.rate_limit_next(1, status=status, code=code)
    with pytest.raises(RateLimited) as limited:
        client(fake).mentions(POST)
    assert limited.value.reset_at == NEXT_HOUR
    assert len(fake.mention_calls()) == 1
    assert len(client(fake).mentions(POST).mentions) == 1  # the limit has passed


def test_a_rate_limit_with_retry_after_waits_that_long(fake: FakeWeiboAPI) -> None:
    fake.rate_limit_next(1, status=429, retry_after=30)
    with pytest.raises(RateLimited) as limited:
        client(fake).mentions(COMMENT)
    assert limited.value.reset_at == NOW + 30


def test_a_gateways_bare_429_is_a_rate_limit_too(fake: FakeWeiboAPI) -> None:
    fake.rate_limit_next(1, status=429, code=None)
    with pytest.raises(RateLimited) as limited:
        client(fake).followers_count()
    assert limited.value.reset_at == NEXT_HOUR and len(fake.calls) == 1


def test_a_token_revoked_during_paging_is_auth_expired_naming_the_setting(fake: FakeWeiboAPI) -> None:
    for i in range(4):
        fake.mention_post(f"提到 {i}")
    pages = client(fake).mention_pages(POST, count=2)
    assert len(next(pages).mentions) == 2
    fake.revoke_token()
    with pytest.raises(AuthExpired, match=TOKEN_SETTING) as expired:
        next(pages)
    assert expired.value.code == 21332
    assert len(fake.mention_calls()) == 2  # refused, not retried


def test_a_wrong_token_is_auth_expired(fake: FakeWeiboAPI) -> None:
    with pytest.raises(AuthExpired, match="21332"):
        client(fake, token="2.00SomeoneElsesToken").followers_count()


# ---------------------------------------------------------------------------------- retries and timeouts
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_then_success_is_retried(fake: FakeWeiboAPI, status: int) -> None:
    fake.mention_post("一条")
    fake.fail_next(RETRIES, status=status)
    assert len(client(fake).mentions(POST).mentions) == 1
    assert len(fake.mention_calls()) == RETRIES + 1


def test_server_errors_beyond_the_retries_are_a_channel_error(fake: FakeWeiboAPI) -> None:
    fake.fail_next(RETRIES + 1, status=500)
    with pytest.raises(WeiboAPIError) as failure:
        client(fake).mentions(POST)
    assert failure.value.status == 500 and failure.value.code == 10001
    assert len(fake.mention_calls()) == RETRIES + 1


def test_a_500_in_the_middle_of_paging_is_retried_and_nothing_is_lost(fake: FakeWeiboAPI) -> None:
    seeded = [fake.mention_post(f"第{i}条") for i in range(5)]
    api = client(fake)
    pages = api.mention_pages(POST, count=2)
    first = next(pages)
    fake.fail_next(1, status=500)
    ids = [m.external_id for m in first.mentions] + [m.external_id for page in pages for m in page.mentions]
    assert ids == [s["idstr"] for s in reversed(seeded)]


def test_a_read_timeout_on_a_get_is_retried(fake: FakeWeiboAPI) -> None:
    fake.mention_post("一条")
    fake.timeout_next(1)
    started = time.monotonic()
    assert len(client(fake).mentions(POST).mentions) == 1
    assert time.monotonic() - started >= READ_TIMEOUT  # it did wait out one timeout
    assert len(fake.mention_calls()) == 2


def test_read_timeouts_beyond_the_retries_are_a_channel_error(fake: FakeWeiboAPI) -> None:
    fake.timeout_next(RETRIES + 1)
    started = time.monotonic()
    with pytest.raises(WeiboAPIError, match="no answer"):
        client(fake).followers_count()
    assert time.monotonic() - started < fake.timeout_seconds * (RETRIES + 1)  # the client gave up, not the server
    assert len(fake.calls) == RETRIES + 1


# ---------------------------------------------------------------------------------- public replies
def test_a_reply_to_a_comment_mention_reaches_weibo_with_id_cid_and_comment(fake: FakeWeiboAPI) -> None:
    post = fake.post("品牌新品发布")
    comment = fake.mention_comment("@品牌官方微博 我的订单还没发货", status=post)
    (mention,) = client(fake).mentions(COMMENT).mentions
    WeiboSender(client(fake)).send(public_reply(mention.reply_ref, "您好，已为您加急处理 🙏"))
    assert fake.replies == [{"endpoint": "comments/reply", "id": post["idstr"], "cid": comment["idstr"],
                             "comment": "您好，已为您加急处理 🙏", "created_id": fake.replies[0]["created_id"]}]
    assert int(fake.replies[0]["created_id"]) > int(comment["idstr"])


def test_a_reply_to_a_post_mention_comments_on_the_post(fake: FakeWeiboAPI) -> None:
    post = fake.mention_post("@品牌官方微博 想买新款，哪里有货？")
    (mention,) = client(fake).mentions(POST).mentions
    WeiboSender(client(fake)).send(public_reply(mention.reply_ref, "官方旗舰店有货哦"))
    assert [(r["endpoint"], r["id"], r["cid"], r["comment"]) for r in fake.replies] == [
        ("comments/create", post["idstr"], None, "官方旗舰店有货哦")]


def test_a_comment_that_got_no_answer_is_outcome_unknown_and_not_resent(fake: FakeWeiboAPI) -> None:
    post = fake.mention_post("@品牌官方微博 在吗")
    fake.timeout_next(1, path="/2/comments/create.json")
    with pytest.raises(SendOutcomeUnknown):
        WeiboSender(client(fake)).send(public_reply(post["idstr"], "在的"))
    assert len(fake.replies) == 1  # Weibo took it; only the answer was lost
    assert [path for method, path, _ in fake.calls if method == "POST"] == ["/2/comments/create.json"]


def test_a_5xx_on_a_comment_is_outcome_unknown_and_not_resent(fake: FakeWeiboAPI) -> None:
    post = fake.mention_post("@品牌官方微博 在吗")
    fake.fail_next(1, status=502, path="/2/comments/create.json")
    with pytest.raises(SendOutcomeUnknown):
        WeiboSender(client(fake)).send(public_reply(post["idstr"], "在的"))
    assert len([c for c in fake.calls if c[0] == "POST"]) == 1


def test_a_comment_weibo_refuses_is_send_failed_with_its_code(fake: FakeWeiboAPI) -> None:
    post = fake.mention_post("会被删的")
    fake.delete_status(post["id"])
    with pytest.raises(SendFailed) as failure:
        WeiboSender(client(fake)).send(public_reply(post["idstr"], "您好"))
    assert failure.value.code == 20101 and not isinstance(failure.value, SendOutcomeUnknown)
    with pytest.raises(SendFailed) as too_long:
        WeiboSender(client(fake)).send(public_reply(fake.mention_post("在")["idstr"], "长" * 141))
    assert too_long.value.code == 20012 and fake.replies == []


def test_a_revoked_token_on_a_comment_is_send_failed_naming_the_setting(fake: FakeWeiboAPI) -> None:
    post = fake.mention_post("在吗")
    fake.revoke_token()
    with pytest.raises(SendFailed, match=TOKEN_SETTING) as failure:
        WeiboSender(client(fake)).send(public_reply(post["idstr"], "在的"))
    assert failure.value.code == 21332 and fake.replies == []


def test_a_comment_that_never_connected_is_a_plain_send_failure() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = WeiboClient("2.00token", f"http://127.0.0.1:{port}/2/", retries=0, connect_timeout=0.5)
    with pytest.raises(SendFailed) as failure:
        WeiboSender(api).send(public_reply("12345", "在的"))
    assert not isinstance(failure.value, SendOutcomeUnknown)


# ---------------------------------------------------------------------------------- followers
def test_followers_come_from_users_show(fake: FakeWeiboAPI) -> None:
    fan = fake.add_user("某粉丝", followers=3210)
    api = client(fake)
    assert api.followers_count() == 12345  # the brand's own account
    assert api.followers_count(fan["idstr"]) == 3210
    assert [p for m, path, p in fake.calls if path == "/2/users/show.json"] == [
        {"uid": fake.uid}, {"uid": fan["idstr"]}]
    with pytest.raises(WeiboAPIError) as failure:
        api.followers_count("1999999999")
    assert failure.value.code == 20003
