"""The WeChat channel without I/O: verification, normalization, replies."""
from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from channels import base
from channels.base import MalformedMessage, SignatureError
from channels.wechat import WeChatChannel, signature
from channels.wechat_push import WeChatServer, event_xml, text_xml
from tests.conftest import AES_KEY, fixture_xml

NOW = 1_795_400_000


def channel(aes_key: str | None = None) -> WeChatChannel:
    return WeChatChannel("tok", "wxapp", aes_key, timestamp_window=300, clock=lambda: NOW)


def parse(ch: WeChatChannel, xml: str, timestamp: int = NOW):  # type: ignore[no-untyped-def]
    query, body = WeChatServer("tok", "wxapp", ch.aes_key).push(xml, timestamp=timestamp)
    return ch.parse(dict(parse_qsl(query)), body)


def test_signature_is_sha1_of_sorted_parts() -> None:
    # The example of WeChat's access guide (接入指南): sorted, concatenated, SHA-1.
    import hashlib
    assert signature("b", "a", "c") == hashlib.sha1(b"abc").hexdigest()


def test_timestamp_window_both_ways() -> None:
    ch = channel()
    assert parse(ch, fixture_xml("text"), NOW - 299).kind == base.TEXT
    for skew in (-301, 301):
        with pytest.raises(SignatureError):
            parse(ch, fixture_xml("text"), NOW + skew)


def test_dedupe_keys() -> None:
    ch = channel()
    assert parse(ch, fixture_xml("text")).dedupe_key == "msg:24812345678901001"
    click = parse(ch, fixture_xml("event_click"))
    assert click.dedupe_key == "evt:oUser0000000000000000000001:1795400000:CLICK:MENU_POINTS"
    assert parse(ch, fixture_xml("event_subscribe")).dedupe_key.endswith(":subscribe:")


def test_unknown_types_keep_their_names() -> None:
    unknown = parse(channel(), fixture_xml("unknown_event"))
    assert unknown.kind == base.UNKNOWN and unknown.attributes["event"] == "some_future_event"
    assert parse(channel(), fixture_xml("unknown_future_msgtype")).attributes["msg_type"] == "some_future_msgtype"


def test_safe_mode_round_trip_and_reply_encryption() -> None:
    ch = channel(AES_KEY)
    msg = parse(ch, text_xml("gh_a", "oUser", "你好<&>", 7, NOW))
    assert msg.text == "你好<&>" and msg.kind == base.TEXT
    reply = ch.render_reply(msg, "回复 <b>", {"nonce": "n1"})
    assert WeChatServer("tok", "wxapp", AES_KEY).read_reply(reply)["Content"] == "回复 <b>"


def test_reply_text_is_escaped_in_xml() -> None:
    ch = channel()
    msg = parse(ch, event_xml("gh_a", "oUser", "subscribe", None, NOW))
    reply = ch.render_reply(msg, "]]><x>", {})
    assert WeChatServer("tok", "wxapp").read_reply(reply)["Content"] == "]]><x>"


def test_empty_reply_is_success() -> None:
    ch = channel()
    assert ch.render_reply(parse(ch, fixture_xml("event_view")), "", {}) == "success"


def test_wrong_app_id_in_ciphertext_is_malformed() -> None:
    ours = channel(AES_KEY)
    query, body = WeChatServer("tok", "wxOTHER", AES_KEY).push(fixture_xml("text"), timestamp=NOW)
    with pytest.raises(MalformedMessage):
        ours.parse(dict(parse_qsl(query)), body)


def test_customer_text_that_ends_cdata_round_trips() -> None:
    ch = channel()
    msg = parse(ch, text_xml("gh_a", "oUser", "a]]>b\x01", 8, NOW))
    assert msg.text == "a]]>b"
