"""channels.twitter without I/O: v2 JSON (the documented shapes of the mentions timeline and recent
search) turned into ``Mention``s, the transport adapter's mounting, and the sender's error mapping."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from requests.adapters import HTTPAdapter

from channels import base
from channels.base import AuthExpired, OutboundMessage, QuotaExceeded, RateLimited, SendFailed
from channels.twitter import (REPLY, RewriteBaseAdapter, TwitterClient, TwitterSender, parse_page, parse_tweet,
                              snowflake_time, unescape)
from config import ConfigError, load_settings

BRAND = "1500000000000000001"
BIG = "1876543210987654321"  # above 2**53, below 2**63 like every snowflake: a float would round it

# GET /2/users/:id/mentions as documented, with expansions=author_id and the project's fields.
DOCUMENTED = {
    "data": [
        {"id": "1460323737035677698", "author_id": "2244994945", "conversation_id": "1460323737035677698",
         "created_at": "2021-11-15T19:08:05.000Z", "edit_history_tweet_ids": ["1460323737035677698"],
         "text": "Introducing a new era for the @brand Developer Platform! 📣 Q&amp;A &lt;here&gt;",
         "public_metrics": {"retweet_count": 7, "reply_count": 3, "like_count": 21, "quote_count": 2}},
        {"id": "1460322500000000000", "author_id": "783214", "conversation_id": "1460300000000000000",
         "in_reply_to_user_id": BRAND, "created_at": "2021-11-15T19:03:10.123Z",
         "edit_history_tweet_ids": ["1460322500000000000"],
         "referenced_tweets": [{"type": "replied_to", "id": "1460300000000000000"}],
         "text": "@brand my order never arrived",
         "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 1, "quote_count": 0}},
    ],
    "includes": {"users": [
        {"id": "2244994945", "name": "Twitter Dev", "username": "TwitterDev", "verified": True,
         "public_metrics": {"followers_count": 513958, "following_count": 2039, "tweet_count": 3635,
                            "listed_count": 1672}},
        {"id": "783214", "name": "Twitter", "username": "Twitter", "verified": False,
         "public_metrics": {"followers_count": 120, "following_count": 5, "tweet_count": 15, "listed_count": 0}},
    ]},
    "meta": {"result_count": 2, "newest_id": "1460323737035677698", "oldest_id": "1460322500000000000",
             "next_token": "7140dibdnow9c7btw3w29grvxfcgvpb9n9coehpk7xz5i"},
}


def test_documented_mentions_become_mentions_with_their_authors() -> None:
    page = parse_page(DOCUMENTED, BRAND)
    first, second = page.mentions
    assert first.channel == "twitter" and first.account == BRAND
    assert first.external_id == "1460323737035677698" and first.kind == base.POST
    assert first.text == "Introducing a new era for the @brand Developer Platform! 📣 Q&A <here>"
    assert (first.author_id, first.author_screen_name, first.author_followers, first.author_verified) == \
        ("2244994945", "TwitterDev", 513958, True)
    assert (first.reposts, first.comments, first.likes) == (9, 3, 21)  # quotes count as reposts
    assert first.created_at == datetime(2021, 11, 15, 19, 8, 5, tzinfo=timezone.utc)
    assert first.created_at.utcoffset() is not None
    assert first.url == "https://x.com/TwitterDev/status/1460323737035677698"
    assert first.reply_ref == "1460323737035677698" and first.in_reply_to is None
    assert json.loads(first.raw) == DOCUMENTED["data"][0]
    assert second.kind == REPLY and second.in_reply_to == "1460300000000000000"
    assert (second.author_screen_name, second.author_followers, second.author_verified) == ("Twitter", 120, False)
    assert second.created_at == datetime(2021, 11, 15, 19, 3, 10, 123000, tzinfo=timezone.utc)
    assert (page.newest_id, page.oldest_id, page.result_count) == ("1460323737035677698", "1460322500000000000", 2)
    assert page.next_token == "7140dibdnow9c7btw3w29grvxfcgvpb9n9coehpk7xz5i"
    assert page.problems == ()


def test_missing_includes_keep_the_tweet_without_an_author() -> None:
    payload = {key: value for key, value in DOCUMENTED.items() if key != "includes"}
    page = parse_page(payload, BRAND)
    assert [m.external_id for m in page.mentions] == ["1460323737035677698", "1460322500000000000"]
    mention = page.mentions[0]
    assert mention.author_id == "2244994945"
    assert (mention.author_screen_name, mention.author_followers, mention.author_verified) == (None, None, False)
    assert mention.url == "https://x.com/i/web/status/1460323737035677698"
    assert len(page.problems) == 2 and "2244994945" in page.problems[0]


def test_a_suspended_author_is_reported_and_the_others_keep_theirs() -> None:
    payload = json.loads(json.dumps(DOCUMENTED))
    payload["includes"]["users"] = payload["includes"]["users"][1:]
    payload["errors"] = [{"value": "2244994945", "detail": "Could not find user with author_id: [2244994945].",
                          "title": "Not Found Error", "resource_type": "user", "parameter": "author_id",
                          "resource_id": "2244994945",
                          "type": "https://api.twitter.com/2/problems/resource-not-found"}]
    page = parse_page(payload, BRAND)
    assert page.mentions[0].author_screen_name is None and page.mentions[1].author_screen_name == "Twitter"
    assert "Could not find user with author_id: [2244994945]." in page.problems


def test_deleted_and_unreadable_tweets_do_not_sink_the_page() -> None:
    payload = {
        "data": [{"id": "1460323737035677698", "text": "still here", "author_id": "783214"},
                 {"text": "no id at all"},
                 "not an object",
                 {"id": 1.46e18, "text": "an id through a float"}],
        "includes": {"users": [{"id": "783214", "name": "Twitter", "username": "Twitter"}]},
        "errors": [{"value": "1460000000000000001", "detail": "Could not find tweet with id: [1460000000000000001].",
                    "title": "Not Found Error", "resource_type": "tweet", "parameter": "id",
                    "type": "https://api.twitter.com/2/problems/resource-not-found"}],
        "meta": {"result_count": 4, "newest_id": "1460323737035677698", "oldest_id": "1460323737035677698"},
    }
    page = parse_page(payload, BRAND)
    assert [m.external_id for m in page.mentions] == ["1460323737035677698"]
    assert page.problems[0] == "Could not find tweet with id: [1460000000000000001]."
    assert len(page.problems) == 4  # the deleted one, and three that could not be read


def test_a_page_of_only_errors_or_nothing() -> None:
    assert parse_page({"meta": {"result_count": 0}}, BRAND).mentions == ()
    empty = parse_page({"meta": {"result_count": 0}}, BRAND)
    assert (empty.newest_id, empty.oldest_id, empty.next_token, empty.result_count) == (None, None, None, 0)
    only_errors = parse_page({"errors": [{"title": "Not Found Error", "detail": "gone"}]}, BRAND)
    assert only_errors.mentions == () and only_errors.problems == ("gone",)


@pytest.mark.parametrize("escaped, written", [
    ("AT&amp;T &lt;3 &gt;_&lt;", "AT&T <3 >_<"),
    ("&amp;amp; is how you write &amp;", "&amp; is how you write &"),  # one pass, not two
    ("&copy; &quot;as typed&quot;", "&copy; &quot;as typed&quot;"),  # v2 escapes only & < >
    ("🙂👍🏽 café 中文", "🙂👍🏽 café 中文"),
])
def test_html_entities_are_unescaped_once(escaped: str, written: str) -> None:
    assert unescape(escaped) == written


def test_tweet_entities_leave_the_text_as_written() -> None:
    tweet = {"id": "1460323737035677698", "author_id": "783214",
             "text": "@brand #launch &amp; more https://t.co/abc",
             "entities": {"mentions": [{"start": 0, "end": 6, "username": "brand", "id": BRAND}],
                          "hashtags": [{"start": 7, "end": 14, "tag": "launch"}],
                          "urls": [{"start": 22, "end": 45, "url": "https://t.co/abc",
                                    "expanded_url": "https://example.com/launch"}]}}
    mention = parse_tweet(tweet, {}, BRAND)
    assert mention.text == "@brand #launch & more https://t.co/abc"
    assert json.loads(mention.raw)["entities"]["hashtags"][0]["tag"] == "launch"


def test_big_ids_stay_exact_strings() -> None:
    assert float(BIG) != int(BIG)  # the reason ids are never numbers here
    payload = {
        "data": [{"id": BIG, "author_id": "1876543210987654999", "text": "hi",
                  "referenced_tweets": [{"type": "replied_to", "id": "9007199254740993"}]},
                 {"id": 9007199254740995, "text": "an id sent as a JSON number"}],
        "includes": {"users": [{"id": "1876543210987654999", "username": "big", "name": "Big"}]},
        "meta": {"result_count": 2, "newest_id": BIG, "oldest_id": "9007199254740995"},
    }
    page = parse_page(json.loads(json.dumps(payload)), BRAND)
    first, second = page.mentions
    assert (first.external_id, first.author_id, first.in_reply_to) == \
        (BIG, "1876543210987654999", "9007199254740993")
    assert first.author_screen_name == "big"
    assert second.external_id == "9007199254740995"
    assert (page.newest_id, page.oldest_id) == (BIG, "9007199254740995")


def test_newest_and_oldest_come_from_the_tweets_when_meta_lacks_them() -> None:
    payload = {"data": [{"id": "1460323737035677698", "text": "a"}, {"id": "9007199254740993", "text": "b"}]}
    page = parse_page(payload, BRAND)
    assert (page.newest_id, page.oldest_id, page.result_count) == ("1460323737035677698", "9007199254740993", 2)


def test_created_at_missing_or_malformed_comes_from_the_snowflake_id() -> None:
    expected = datetime(2021, 11, 15, 19, 8, 5, 69000, tzinfo=timezone.utc)
    assert snowflake_time("1460323737035677698") == expected
    for created in (None, "yesterday", 12):
        tweet = {"id": "1460323737035677698", "text": "x", "created_at": created}
        assert parse_tweet(tweet, {}, BRAND).created_at == expected
    absurd = parse_tweet({"id": "1800000000000000000000123", "text": "x"}, {}, BRAND)  # past year 9999
    assert absurd.external_id == "1800000000000000000000123" and absurd.created_at.tzinfo == timezone.utc
    offset = parse_tweet({"id": "1", "text": "x", "created_at": "2021-11-15T21:08:05+02:00"}, {}, BRAND)
    assert offset.created_at == datetime(2021, 11, 15, 19, 8, 5, tzinfo=timezone.utc)
    assert offset.created_at.tzinfo == timezone.utc


def test_a_long_tweet_keeps_its_whole_text() -> None:
    whole = "@brand " + "很长的投诉 " * 60 + "&amp; the end"
    cut = whole[:279] + "…"
    mention = parse_tweet({"id": "1", "text": cut, "note_tweet": {"text": whole}}, {}, BRAND)
    assert mention.text.endswith("& the end") and len(mention.text) > 280 and not mention.truncated
    short = parse_tweet({"id": "1", "text": cut, "note_tweet": {}}, {}, BRAND)
    assert short.text == cut and short.truncated


def test_quotes_and_retweets_name_the_tweet_they_repost() -> None:
    quote = parse_tweet({"id": "2", "text": "look @brand",
                         "referenced_tweets": [{"type": "quoted", "id": "1460300000000000000"}]}, {}, BRAND)
    assert (quote.kind, quote.in_reply_to) == (base.POST, "1460300000000000000")
    both = parse_tweet({"id": "3", "text": "@a @brand",
                        "referenced_tweets": [{"type": "quoted", "id": "11"}, {"type": "replied_to", "id": "12"}]},
                       {}, BRAND)
    assert (both.kind, both.in_reply_to) == (REPLY, "12")


def test_missing_metrics_are_zero_not_an_error() -> None:
    mention = parse_tweet({"id": "1", "text": "x", "public_metrics": {"like_count": "many"}}, {}, BRAND)
    assert (mention.reposts, mention.comments, mention.likes) == (0, 0, 0)


# ---------------------------------------------------------------- the client's transport


def test_the_public_base_mounts_nothing() -> None:
    client = TwitterClient("bearer", BRAND)
    adapter = client.api.session.get_adapter("https://api.twitter.com/2/tweets")
    assert type(adapter) is HTTPAdapter


def test_another_base_mounts_the_rewriting_adapter_on_the_public_prefix() -> None:
    client = TwitterClient("bearer", BRAND, api_base="http://127.0.0.1:9/twitter")
    adapter = client.api.session.get_adapter("https://api.twitter.com/2/tweets")
    assert isinstance(adapter, RewriteBaseAdapter) and adapter.api_base == "http://127.0.0.1:9/twitter/"
    assert type(client.api.session.get_adapter("https://example.com/")) is HTTPAdapter


def test_settings_name_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="CRMBOT_TWITTER_BEARER_TOKEN"):
        TwitterClient.from_settings(load_settings({"CRMBOT_SECRET_KEY": "x" * 32, "CRMBOT_TWITTER_USER_ID": BRAND}))
    reads_only = load_settings({"CRMBOT_SECRET_KEY": "x" * 32, "CRMBOT_TWITTER_USER_ID": BRAND,
                                "CRMBOT_TWITTER_BEARER_TOKEN": "b"})
    assert TwitterClient.from_settings(reads_only).user_id == BRAND
    with pytest.raises(ConfigError, match="CRMBOT_TWITTER_CONSUMER_KEY"):
        TwitterSender.from_settings(reads_only)


# ---------------------------------------------------------------- the sender


class FakeClient:
    """Stands in for TwitterClient.reply: records the call or raises what it is given."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.replies: list[tuple[str, str]] = []

    def reply(self, text: str, in_reply_to: str) -> str:
        if self.error is not None:
            raise self.error
        self.replies.append((text, in_reply_to))
        return "1800000000000000000777"


def reply(reply_to: str | None = "1460323737035677698") -> OutboundMessage:
    return OutboundMessage("twitter", BRAND, "783214", "Sorry to hear that, we have sent a DM", "out-1",
                           reply_to=reply_to)


def test_the_sender_replies_to_the_tweet_named_by_reply_to() -> None:
    client = FakeClient()
    assert TwitterSender(client).send(reply()) == "1800000000000000000777"  # type: ignore[arg-type]
    assert client.replies == [("Sorry to hear that, we have sent a DM", "1460323737035677698")]


@pytest.mark.parametrize("reply_to", [None, "not-a-tweet"])
def test_the_sender_refuses_a_message_without_a_tweet_to_answer(reply_to: str | None) -> None:
    client = FakeClient()
    with pytest.raises(SendFailed, match="reply_to"):
        TwitterSender(client).send(reply(reply_to))  # type: ignore[arg-type]
    assert client.replies == []


def test_the_sender_speaks_the_send_job_s_errors() -> None:
    expired = AuthExpired("renew CRMBOT_TWITTER_ACCESS_TOKEN")
    with pytest.raises(SendFailed, match="CRMBOT_TWITTER_ACCESS_TOKEN") as failure:
        TwitterSender(FakeClient(expired)).send(reply())  # type: ignore[arg-type]
    assert failure.value.code == 401
    with pytest.raises(QuotaExceeded) as quota:
        TwitterSender(FakeClient(RateLimited("wait", 1700000000.0))).send(reply())  # type: ignore[arg-type]
    assert quota.value.code == 429
