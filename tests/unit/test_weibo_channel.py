"""channels/weibo.py without I/O: Weibo's JSON (shapes from open.weibo.com's documented examples)
read into ``Mention``s, and the sender's choice of endpoint from ``OutboundMessage.reply_to``."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from channels import base
from channels.base import AuthExpired, MalformedMessage, Mention, OutboundMessage, RateLimited, SendFailed
from channels.weibo import (NAME, TOKEN_SETTING, WeiboClient, WeiboSender, parse_comment, parse_created_at,
                            parse_mentions, parse_status)
from config import load_settings

ACCOUNT = "5100000001"
BIG = 2**53 + 1  # 9007199254740993: a float would make it ...992


def documented_status(**changes: Any) -> dict:
    """The post of open.weibo.com's statuses/mentions example, with ``changes``."""
    status = {
        "created_at": "Tue May 31 17:46:55 +0800 2011", "id": 11488058246, "idstr": "11488058246",
        "text": "求关注。", "source": '<a href="http://weibo.com" rel="nofollow">新浪微博</a>', "favorited": False,
        "truncated": False, "in_reply_to_status_id": "", "in_reply_to_user_id": "", "in_reply_to_screen_name": "",
        "geo": None, "mid": "5612814510546515491", "reposts_count": 8, "comments_count": 9, "attitudes_count": 3,
        "annotations": [],
        "user": {"id": 1404376560, "idstr": "1404376560", "screen_name": "zaku", "name": "zaku",
                 "followers_count": 1204, "friends_count": 447, "verified": False},
    }
    status.update(changes)
    return status


def documented_comment(**changes: Any) -> dict:
    """The comment of open.weibo.com's comments/mentions example, with ``changes``."""
    comment = {
        "created_at": "Wed Jun 01 00:50:25 +0800 2011", "id": 12438492184, "idstr": "12438492184",
        "text": "love your work.......", "mid": "202110601896455629",
        "user": {"id": 1404376560, "screen_name": "zaku", "followers_count": 1204, "verified": True},
        "status": documented_status(),
    }
    comment.update(changes)
    return comment


# ---------------------------------------------------------------------------------- ids
def test_an_id_above_2_53_without_idstr_stays_exact_through_json() -> None:
    text = '{"created_at": "Tue May 31 17:46:55 +0800 2011", "id": 9007199254740993, "text": "x"}'
    mention = parse_status(json.loads(text), ACCOUNT)
    assert mention.external_id == "9007199254740993" == str(BIG)
    assert mention.reply_ref == "9007199254740993"


def test_idstr_wins_over_an_id_that_went_through_a_float() -> None:
    mention = parse_status(documented_status(id=float(BIG), idstr=str(BIG)), ACCOUNT)
    assert mention.external_id == str(BIG)


def test_an_id_only_given_as_a_float_is_refused_not_rounded() -> None:
    with pytest.raises(MalformedMessage, match="exact id"):
        parse_status(documented_status(id=float(BIG), idstr=None), ACCOUNT)


def test_author_and_post_ids_are_strings() -> None:
    mention = parse_status(documented_status(user={"id": BIG + 10, "screen_name": "大号"}), ACCOUNT)
    assert mention.author_id == str(BIG + 10) and isinstance(mention.author_id, str)
    assert mention.external_id == "11488058246"


# ---------------------------------------------------------------------------------- created_at
def test_created_at_in_weibos_format_becomes_aware_utc() -> None:
    moment = parse_created_at("Tue May 31 17:46:55 +0800 2011")
    assert moment == datetime(2011, 5, 31, 9, 46, 55, tzinfo=timezone.utc)
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0


def test_created_at_with_a_negative_offset_and_a_one_digit_day() -> None:
    assert parse_created_at("Sun Jan 1 20:00:00 -0500 2023") == datetime(2023, 1, 2, 1, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value", ["2011-05-31 17:46:55", "Tue Foo 31 17:46:55 +0800 2011",
                                   "Tue Feb 30 17:46:55 +0800 2011", "", None, 1306835215])
def test_created_at_not_in_weibos_format_is_malformed(value: Any) -> None:
    with pytest.raises(MalformedMessage):
        parse_created_at(value)


# ---------------------------------------------------------------------------------- text
def test_html_entities_are_unescaped_and_emoji_kept() -> None:
    mention = parse_status(documented_status(text="&lt;新品&gt; &amp; &quot;优惠&quot; 😀[微笑] @品牌"), ACCOUNT)
    assert mention.text == '<新品> & "优惠" 😀[微笑] @品牌'


def test_a_cut_long_post_is_flagged_truncated() -> None:
    mention = parse_status(documented_status(text="长" * 137 + "... 全文", isLongText=True), ACCOUNT)
    assert mention.truncated is True


def test_a_long_post_with_its_long_text_is_whole() -> None:
    full = "长文&amp;" + "字" * 300
    mention = parse_status(documented_status(text="长" * 10, isLongText=True,
                                             longText={"longTextContent": full}), ACCOUNT)
    assert mention.truncated is False and mention.text == "长文&" + "字" * 300


# ---------------------------------------------------------------------------------- the documented post
def test_the_documented_post_reads_completely() -> None:
    status = documented_status()
    mention = parse_status(status, ACCOUNT)
    assert mention == Mention(
        channel=NAME, account=ACCOUNT, external_id="11488058246", kind=base.POST, text="求关注。",
        created_at=datetime(2011, 5, 31, 9, 46, 55, tzinfo=timezone.utc), author_id="1404376560",
        author_screen_name="zaku", author_followers=1204, author_verified=False, reposts=8, comments=9, likes=3,
        in_reply_to=None, url="https://m.weibo.cn/status/11488058246", reply_ref="11488058246",
        raw=mention.raw)
    assert json.loads(mention.raw) == status


def test_a_repost_points_at_the_post_it_quotes() -> None:
    mention = parse_status(documented_status(retweeted_status=documented_status(idstr=str(BIG), id=BIG)), ACCOUNT)
    assert mention.in_reply_to == str(BIG)


# ---------------------------------------------------------------------------------- missing and deleted
@pytest.mark.parametrize("user", ["absent", None, {}, {"screen_name": "no id"}])
def test_a_post_without_a_user_has_no_author_and_no_crash(user: Any) -> None:
    status = documented_status()
    if user == "absent":
        del status["user"]
    else:
        status["user"] = user
    mention = parse_status(status, ACCOUNT)
    assert (mention.author_id, mention.author_screen_name, mention.author_followers, mention.author_verified) == (
        None, None, None, False)
    assert mention.text == "求关注。" and mention.reply_ref == "11488058246"


def test_a_comment_without_a_user_has_no_author() -> None:
    comment = documented_comment()
    del comment["user"]
    mention = parse_comment(comment, ACCOUNT)
    assert mention.author_id is None and mention.author_screen_name is None and mention.text == "love your work......."


def test_a_deleted_post_is_flagged_with_its_id_and_no_text() -> None:
    deleted = {"created_at": "Tue May 31 17:46:55 +0800 2011", "id": BIG, "idstr": str(BIG), "mid": str(BIG),
               "text": "抱歉，此微博已被作者删除。查看帮助：http://t.cn/Rfd3rQV", "deleted": "1"}
    mention = parse_status(deleted, ACCOUNT)
    assert mention.deleted is True and mention.external_id == str(BIG)
    assert mention.text == "" and mention.reply_ref is None and mention.url is None and mention.author_id is None


def test_a_deleted_post_in_a_page_still_counts_for_paging() -> None:
    deleted = {"created_at": "Tue May 31 17:46:55 +0800 2011", "id": 5, "idstr": "5", "text": "", "deleted": "1"}
    page = parse_mentions({"statuses": [documented_status(idstr="9", id=9), deleted], "total_number": 2},
                          base.POST, ACCOUNT)
    assert [m.deleted for m in page.mentions] == [False, True]
    assert page.oldest_id == "5" and page.newest_id == "9"


def test_an_unreadable_item_is_rejected_alone_and_its_id_still_seen() -> None:
    broken = documented_status(idstr="7", id=7, created_at="yesterday")
    page = parse_mentions({"statuses": [documented_status(idstr="9", id=9), broken, "not an object"]},
                          base.POST, ACCOUNT)
    assert [m.external_id for m in page.mentions] == ["9"]
    assert len(page.rejected) == 2 and page.rejected[0].startswith("post 7:")
    assert page.ids == ("9", "7") and page.oldest_id == "7"


def test_an_answer_without_its_list_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        parse_mentions({"comments": []}, base.POST, ACCOUNT)


# ---------------------------------------------------------------------------------- comments
def test_a_comment_answers_with_post_and_comment_ids() -> None:
    mention = parse_comment(documented_comment(idstr=str(BIG + 2), id=BIG + 2,
                                               status=documented_status(idstr=str(BIG), id=BIG)), ACCOUNT)
    assert mention.kind == base.COMMENT and mention.external_id == str(BIG + 2)
    assert mention.in_reply_to == str(BIG) and mention.reply_ref == f"{BIG}/{BIG + 2}"
    assert mention.author_verified is True and mention.author_followers == 1204
    assert mention.created_at == datetime(2011, 5, 31, 16, 50, 25, tzinfo=timezone.utc)


def test_a_comment_under_a_deleted_post_cannot_be_answered() -> None:
    deleted = {"created_at": "Tue May 31 17:46:55 +0800 2011", "id": 11, "idstr": "11", "deleted": "1"}
    mention = parse_comment(documented_comment(status=deleted), ACCOUNT)
    assert mention.in_reply_to == "11" and mention.reply_ref is None


def test_a_comment_without_its_post_has_no_thread() -> None:
    comment = documented_comment()
    del comment["status"]
    mention = parse_comment(comment, ACCOUNT)
    assert mention.in_reply_to is None and mention.reply_ref is None and mention.url is None


# ---------------------------------------------------------------------------------- the sender
class RecordingClient:
    """Stands in for WeiboClient's two writes; raises ``fail`` when set."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail = fail

    def comment_on(self, status_id: str, text: str) -> str:
        self.calls.append(("create", status_id, text))
        if self.fail:
            raise self.fail
        return "1"

    def reply_to_comment(self, status_id: str, comment_id: str, text: str) -> str:
        self.calls.append(("reply", status_id, comment_id, text))
        if self.fail:
            raise self.fail
        return "2"


def reply(reply_to: str | None, text: str = "您好，已为您登记") -> OutboundMessage:
    return OutboundMessage(NAME, ACCOUNT, "1404376560", text, idempotency_key="k-1", reply_to=reply_to)


def test_reply_to_a_post_comments_on_it_and_to_a_comment_answers_it() -> None:
    client = RecordingClient()
    sender = WeiboSender(client)  # type: ignore[arg-type]
    sender.send(reply(str(BIG), "谢谢关注"))
    sender.send(reply(f"{BIG}/{BIG + 2}", "已私信您"))
    assert client.calls == [("create", str(BIG), "谢谢关注"), ("reply", str(BIG), str(BIG + 2), "已私信您")]


@pytest.mark.parametrize("reply_to", [None, "", "abc", "12/", "/12", "12/x", "1.5"])
def test_a_weibo_message_without_a_readable_reply_to_is_refused_before_any_call(reply_to: str | None) -> None:
    client = RecordingClient()
    with pytest.raises(SendFailed, match="reply_to"):
        WeiboSender(client).send(reply(reply_to))  # type: ignore[arg-type]
    assert client.calls == []


def test_the_outbox_sees_an_expired_token_or_a_rate_limit_as_send_failed() -> None:
    expired = AuthExpired(f"Weibo refused the access token (21327 expired_token): set a new {TOKEN_SETTING}", 21327)
    with pytest.raises(SendFailed, match=TOKEN_SETTING) as failure:
        WeiboSender(RecordingClient(expired)).send(reply("12"))  # type: ignore[arg-type]
    assert failure.value.code == 21327
    with pytest.raises(SendFailed, match="rate limit"):
        WeiboSender(RecordingClient(RateLimited("Weibo rate limit", 1.0))).send(reply("12"))  # type: ignore[arg-type]


def test_outbound_messages_stay_private_unless_told() -> None:
    assert OutboundMessage("wechat", "gh", "openid", "hi", idempotency_key="k").reply_to is None


# ---------------------------------------------------------------------------------- configuration
def test_no_token_names_the_setting() -> None:
    settings = load_settings({"CRMBOT_VAR_DIR": "/tmp/crmbot-weibo-unit", "CRMBOT_SECRET_KEY": "x" * 32})
    with pytest.raises(AuthExpired, match=TOKEN_SETTING):
        WeiboClient.from_settings(settings)


def test_the_client_follows_the_configured_base_uid_and_token() -> None:
    settings = load_settings({"CRMBOT_VAR_DIR": "/tmp/crmbot-weibo-unit", "CRMBOT_SECRET_KEY": "x" * 32,
                              "CRMBOT_WEIBO_ACCESS_TOKEN": "2.00abc", "CRMBOT_WEIBO_UID": ACCOUNT,
                              "CRMBOT_WEIBO_API_BASE": "http://127.0.0.1:9/2"})
    client = WeiboClient.from_settings(settings)
    assert client.api_base == "http://127.0.0.1:9/2/" and client.account == ACCOUNT
    assert client.session.headers["Authorization"] == "OAuth2 2.00abc"
