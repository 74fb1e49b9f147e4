"""tests/fakes/wechat_api.FakeWeChatAPI answers the project's own client (``WeChatSender`` and its
``_BrandClient``) as WeChat's API does: tokens, customer-service sends and their error codes."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Iterator

import fakeredis
import pytest
from wechatpy.exceptions import WeChatClientException

from channels.base import OutboundMessage, SendFailed
from channels.wechat import WeChatSender
from tests.fakes.wechat_api import FakeWeChatAPI

APP_ID, SECRET = "wxtestappid", "testsecret"  # the fake's defaults
OPENID = "oUser0000000000000000000001"
TOKEN_CALL = ("GET", "/cgi-bin/token")
SEND_CALL = ("POST", "/cgi-bin/message/custom/send")


@pytest.fixture
def fake() -> Iterator[FakeWeChatAPI]:
    with FakeWeChatAPI() as api:
        yield api


def sender(fake: FakeWeChatAPI, app_id: str = APP_ID, secret: str = SECRET) -> WeChatSender:
    """The sender the web app and the workers build, pointed at ``fake``; its token in a fake Redis."""
    return WeChatSender(app_id, secret, fake.base_url, fakeredis.FakeRedis(), timeout=5)


def outbound(text: str) -> OutboundMessage:
    return OutboundMessage("wechat", "gh_brand0001", OPENID, text, idempotency_key=text)


def test_base_url_shape(fake: FakeWeChatAPI) -> None:
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.base_url.endswith("/cgi-bin/")


def test_send_lands_in_sent_with_chinese_intact(fake: FakeWeChatAPI) -> None:
    wechat = sender(fake)
    wechat.send(outbound("你好"))
    assert fake.sent == [{"touser": OPENID, "msgtype": "text", "text": {"content": "你好"}}]
    assert fake.calls == [TOKEN_CALL, SEND_CALL]
    # The token is kept: a second send does not fetch another.
    wechat.send(outbound("再见"))
    assert fake.token_fetches == 1
    assert fake.sent[-1]["text"]["content"] == "再见"


def test_expired_token_answers_42001(fake: FakeWeChatAPI) -> None:
    wechat = sender(fake)
    wechat.send(outbound("你好"))
    fake.expire_tokens()
    with pytest.raises(WeChatClientException) as refused:
        wechat.client.message.send_text(OPENID, "你好")
    assert refused.value.errcode == 42001
    assert len(fake.sent) == 1
    # WeChatSender reads 42001 as "fetch a new token" and the fake takes the new one.
    wechat.send(outbound("刷新后"))
    assert fake.calls[-3:] == [SEND_CALL, TOKEN_CALL, SEND_CALL]
    assert fake.token_fetches == 2 and len(fake.sent) == 2


def test_token_never_issued_answers_40001(fake: FakeWeChatAPI) -> None:
    wechat = sender(fake)
    wechat.client.session.set(wechat.client.access_token_key, "NOT_ISSUED")
    with pytest.raises(WeChatClientException) as refused:
        wechat.client.message.send_text(OPENID, "你好")
    assert refused.value.errcode == 40001
    assert fake.calls == [SEND_CALL] and fake.sent == []


def test_scripted_failure_45015_then_recovers(fake: FakeWeChatAPI) -> None:
    wechat = sender(fake)
    fake.fail_next_send(45015, "response out of time limit or subscription is canceled")
    with pytest.raises(SendFailed) as failure:
        wechat.send(outbound("你好"))
    assert failure.value.code == 45015
    assert fake.sent == []
    wechat.send(outbound("你好"))
    assert len(fake.sent) == 1


def test_scripted_failure_times(fake: FakeWeChatAPI) -> None:
    wechat = sender(fake)
    fake.fail_next_send(45047, "out of response count limit", times=2)
    for _ in range(2):
        with pytest.raises(SendFailed) as failure:
            wechat.send(outbound("你好"))
        assert failure.value.code == 45047
    wechat.send(outbound("你好"))
    assert len(fake.sent) == 1


@pytest.mark.parametrize(("app_id", "secret", "code"), [(APP_ID, "wrong", 40125), ("wxwrong", SECRET, 40013)])
def test_wrong_credentials_get_no_token(fake: FakeWeChatAPI, app_id: str, secret: str, code: int) -> None:
    wechat = sender(fake, app_id, secret)
    with pytest.raises(WeChatClientException) as refused:
        wechat.client.fetch_access_token()
    assert refused.value.errcode == code
    # Through the sender it is a send failure with WeChat's code, and nothing is sent.
    with pytest.raises(SendFailed) as failure:
        wechat.send(outbound("你好"))
    assert failure.value.code == code
    assert fake.token_fetches == 0 and fake.calls == [TOKEN_CALL, TOKEN_CALL]


def _raw_post(url: str, body: bytes) -> dict:
    req = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read().decode("utf-8"))


def test_send_without_touser_or_msgtype_is_rejected(fake: FakeWeChatAPI) -> None:
    token = sender(fake).client.access_token  # fetched by the project's client
    url = f"{fake.base_url}message/custom/send?access_token={token}"
    res = _raw_post(url, json.dumps({"msgtype": "text", "text": {"content": "x"}}).encode())
    assert res["errcode"] == 40003
    res = _raw_post(url, json.dumps({"touser": OPENID}).encode())
    assert res["errcode"] == 44002
    assert fake.sent == []


def test_unknown_path_is_404_json(fake: FakeWeChatAPI) -> None:
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(fake.base_url + "menu/create")
    assert excinfo.value.code == 404
    assert json.loads(excinfo.value.read().decode()) == {"errcode": -1, "errmsg": "not found"}
    assert fake.calls[-1] == ("GET", "/cgi-bin/menu/create")


def test_start_returns_self_and_stop() -> None:
    api = FakeWeChatAPI()
    assert api.start() is api
    url = api.base_url
    api.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "token", timeout=2)


def test_concurrent_sends_are_all_recorded(fake: FakeWeChatAPI) -> None:
    wechat = sender(fake)
    wechat.client.fetch_access_token()
    errors: list[BaseException] = []

    def send(i: int) -> None:
        try:
            wechat.send(outbound(f"消息{i}"))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert errors == []
    assert sorted(m["text"]["content"] for m in fake.sent) == sorted(f"消息{i}" for i in range(20))
    assert fake.calls == [TOKEN_CALL] + [SEND_CALL] * 20
