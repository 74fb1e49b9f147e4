"""Every WeChat push fixture, signed as WeChat signs it (plain and safe mode), through
``WeChatChannel.parse`` to the ``InboundMessage`` the rest of the service sees."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from channels import base
from channels.base import InboundMessage
from channels.wechat import WeChatChannel
from channels.wechat_push import WeChatServer
from tests.conftest import AES_KEY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wechat"
TOKEN, APP_ID = "tok", "wxapp"
CREATED = 1_795_400_000  # every fixture's CreateTime (fixtures/wechat/README.md)
USER, ACCOUNT = "oUser0000000000000000000001", "gh_brand0001"
SENT_AT = datetime(2026, 11, 23, 2, 13, 20, tzinfo=timezone.utc)  # CREATED, in UTC
EVT = f"evt:{USER}:{CREATED}:"  # an event's dedupe key starts so: FromUserName + CreateTime

# file -> (kind, text, attributes, dedupe key)
EXPECTED: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "text.xml": (base.TEXT, "你好，我想查积分", {}, "msg:24812345678901001"),
    "image.xml": (base.IMAGE, "", {"media_id": "FAKE_IMAGE_MEDIA_ID_0001",
                                   "pic_url": "http://mmbiz.qpic.cn/mmbiz_jpg/FAKEPICURL0001/0"},
                  "msg:24812345678901002"),
    # With speech recognition on, the transcript is the text the bot reads.
    "voice.xml": (base.VOICE, "我的积分还有多少", {"media_id": "FAKE_VOICE_MEDIA_ID_0001", "format": "amr"},
                  "msg:24812345678901003"),
    "video.xml": (base.VIDEO, "", {"media_id": "FAKE_VIDEO_MEDIA_ID_0001",
                                   "thumb_media_id": "FAKE_VIDEO_THUMB_MEDIA_ID_0001", "short": False},
                  "msg:24812345678901004"),
    "shortvideo.xml": (base.VIDEO, "", {"media_id": "FAKE_SHORTVIDEO_MEDIA_ID_0001",
                                        "thumb_media_id": "FAKE_SHORTVIDEO_THUMB_MEDIA_ID_0001", "short": True},
                       "msg:24812345678901005"),
    "location.xml": (base.LOCATION, "上海市黄浦区人民广场",
                     {"latitude": "31.230416", "longitude": "121.473701", "scale": "20",
                      "label": "上海市黄浦区人民广场"},
                     "msg:24812345678901006"),
    "link.xml": (base.LINK, "会员积分规则",
                 {"title": "会员积分规则", "description": "2026 年会员积分规则说明",
                  "url": "https://example.com/points/rules"},
                 "msg:24812345678901007"),
    "event_subscribe.xml": (base.SUBSCRIBE, "", {"scene": None}, EVT + "subscribe:"),
    # wechatpy renames the event subscribe_scan and strips qrscene_ from the key before we see it.
    "event_subscribe_scene.xml": (base.SUBSCRIBE, "",
                                  {"scene": "campaign2026", "ticket": "gQFAKETICKET0000000000000000000000000000000001"},
                                  EVT + "subscribe_scan:campaign2026"),
    "event_unsubscribe.xml": (base.UNSUBSCRIBE, "", {}, EVT + "unsubscribe:"),
    "event_scan.xml": (base.SCAN, "",
                       {"scene": "campaign2026", "ticket": "gQFAKETICKET0000000000000000000000000000000002"},
                       EVT + "SCAN:campaign2026"),
    "event_location.xml": (base.LOCATION_REPORT, "",
                           {"latitude": 31.230416, "longitude": 121.473701, "precision": 65.0},
                           EVT + "LOCATION:"),
    "event_click.xml": (base.MENU_CLICK, "", {"key": "MENU_POINTS"}, EVT + "CLICK:MENU_POINTS"),
    "event_view.xml": (base.MENU_VIEW, "", {"url": "https://example.com/member/center"},
                       EVT + "VIEW:https://example.com/member/center"),
    # Types we do not handle are kept as UNKNOWN with their names, never dropped; wechatpy knows
    # miniprogrampage, this service does not (yet).
    "unknown_msgtype.xml": (base.UNKNOWN, "", {"msg_type": "miniprogrampage", "event": ""},
                            "msg:24812345678901008"),
    "unknown_event.xml": (base.UNKNOWN, "", {"msg_type": "event", "event": "some_future_event"},
                          EVT + "some_future_event:"),
    "unknown_future_msgtype.xml": (base.UNKNOWN, "", {"msg_type": "some_future_msgtype", "event": ""},
                                   "msg:24812345678901099"),
}

MODES = {"plain": None, "safe": AES_KEY}


def receive(name: str, aes_key: str | None) -> InboundMessage:
    """The fixture ``name`` pushed by WeChat's server and parsed by our channel, in one mode."""
    query, body = WeChatServer(TOKEN, APP_ID, aes_key).push(fixture(name), timestamp=CREATED)
    channel = WeChatChannel(TOKEN, APP_ID, aes_key, clock=lambda: CREATED)
    return channel.parse(dict(parse_qsl(query)), body)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_every_fixture_file_is_covered() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.xml")) == sorted(EXPECTED)


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_normalizes_to_inbound_message(name: str, mode: str) -> None:
    kind, text, attributes, dedupe_key = EXPECTED[name]
    msg = receive(name, MODES[mode])
    assert (msg.channel, msg.account, msg.external_user_id) == ("wechat", ACCOUNT, USER)
    assert msg.kind == kind
    assert msg.text == text
    assert dict(msg.attributes) == attributes
    assert msg.dedupe_key == dedupe_key
    assert msg.sent_at == SENT_AT
    # A message's id is its MsgId, the one in its dedupe key; events carry none.
    msg_id = dedupe_key.removeprefix("msg:") if dedupe_key.startswith("msg:") else None
    assert msg.external_message_id == msg_id
    assert msg.is_event == (kind in base.EVENT_KINDS)
    assert msg.raw == fixture(name)  # as received; in safe mode, as decrypted


def test_no_two_fixtures_share_a_dedupe_key() -> None:
    # Events share user and CreateTime here, so only the event and its key keep them apart.
    keys = [receive(name, None).dedupe_key for name in EXPECTED]
    assert len(set(keys)) == len(keys)
