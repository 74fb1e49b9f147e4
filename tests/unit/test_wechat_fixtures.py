"""Every WeChat push fixture parses with wechatpy.parse_message into the expected type."""
from __future__ import annotations

from pathlib import Path

import pytest
from wechatpy import parse_message
from wechatpy.messages import UnknownMessage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wechat"

# file -> (class name, .type, .event or None)
EXPECTED = {
    "text.xml": ("TextMessage", "text", None),
    "image.xml": ("ImageMessage", "image", None),
    "voice.xml": ("VoiceMessage", "voice", None),
    "video.xml": ("VideoMessage", "video", None),
    "shortvideo.xml": ("ShortVideoMessage", "shortvideo", None),
    "location.xml": ("LocationMessage", "location", None),
    "link.xml": ("LinkMessage", "link", None),
    "event_subscribe.xml": ("SubscribeEvent", "event", "subscribe"),
    "event_subscribe_scene.xml": ("SubscribeScanEvent", "event", "subscribe_scan"),
    "event_unsubscribe.xml": ("UnsubscribeEvent", "event", "unsubscribe"),
    "event_scan.xml": ("ScanEvent", "event", "scan"),
    "event_location.xml": ("LocationEvent", "event", "location"),
    "event_click.xml": ("ClickEvent", "event", "click"),
    "event_view.xml": ("ViewEvent", "event", "view"),
    # wechatpy 1.8.18 registers 'miniprogrampage' (小程序卡片), so this is NOT UnknownMessage.
    "unknown_msgtype.xml": ("MiniProgramPageMessage", "miniprogrampage", None),
    "unknown_event.xml": ("UnknownMessage", "unknown", None),
    "unknown_future_msgtype.xml": ("UnknownMessage", "unknown", None),
}


def load(name: str):
    return parse_message((FIXTURES / name).read_text(encoding="utf-8"))


def test_every_fixture_file_is_covered():
    assert sorted(p.name for p in FIXTURES.glob("*.xml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_type(name):
    cls_name, msg_type, event = EXPECTED[name]
    msg = load(name)
    assert type(msg).__name__ == cls_name
    assert msg.type == msg_type
    assert getattr(msg, "event", None) == event
    assert msg.source == "oUser0000000000000000000001"
    assert msg.target == "gh_brand0001"
    assert msg.time == 1795400000


def test_msg_ids_distinct_and_events_have_none():
    ids = {}
    for name in EXPECTED:
        msg = load(name)
        ids[name] = msg.id
        raw = (FIXTURES / name).read_text(encoding="utf-8")
        if "<MsgType><![CDATA[event]]></MsgType>" in raw:
            assert "<MsgId>" not in raw
            assert msg.id == 0  # wechatpy's default when MsgId is absent
        else:
            assert msg.id > 2**32
    non_zero = [v for v in ids.values() if v]
    assert len(non_zero) == len(set(non_zero)) == 9


def test_text_content():
    assert load("text.xml").content == "你好，我想查积分"


def test_media_fields():
    image = load("image.xml")
    assert image.media_id and image.image.startswith("http")
    voice = load("voice.xml")
    assert voice.format == "amr" and voice.recognition == "我的积分还有多少"
    for name in ("video.xml", "shortvideo.xml"):
        msg = load(name)
        assert msg.media_id and msg.thumb_media_id


def test_location_message_fields_are_strings():
    msg = load("location.xml")
    assert msg.location == ("31.230416", "121.473701")
    assert msg.scale == "20"
    assert msg.label == "上海市黄浦区人民广场"


def test_link_fields():
    msg = load("link.xml")
    assert msg.title == "会员积分规则"
    assert msg.url == "https://example.com/points/rules"
    assert msg.description


def test_plain_subscribe_has_empty_key():
    msg = load("event_subscribe.xml")
    # <EventKey><![CDATA[]]></EventKey> parses to None; SubscribeEvent.key defaults to ''
    assert msg.key == ""


def test_subscribe_with_scene_strips_qrscene_prefix():
    msg = load("event_subscribe_scene.xml")
    assert msg.scene_id == "campaign2026"
    assert msg.ticket.startswith("gQ")


def test_scan_event():
    msg = load("event_scan.xml")
    assert msg.scene_id == "campaign2026"
    assert msg.ticket.startswith("gQ")


def test_location_event_fields_are_floats():
    msg = load("event_location.xml")
    assert msg.latitude == pytest.approx(31.230416)
    assert msg.longitude == pytest.approx(121.473701)
    assert msg.precision == pytest.approx(65.0)


def test_click_and_view_keys():
    assert load("event_click.xml").key == "MENU_POINTS"
    assert load("event_view.xml").url == "https://example.com/member/center"


def test_miniprogrampage_fields():
    msg = load("unknown_msgtype.xml")
    assert msg.app_id == "wxminiapp00000001"
    assert msg.title == "积分商城"
    assert msg.page_path == "pages/points/index?from=chat"


def test_unknown_event_is_unknown_message():
    msg = load("unknown_event.xml")
    assert isinstance(msg, UnknownMessage)
    assert msg.type == "unknown"
    assert not hasattr(msg, "event")  # UnknownMessage is not a BaseEvent
    assert msg._data["MsgType"] == "event"
    assert msg._data["Event"] == "some_future_event"
