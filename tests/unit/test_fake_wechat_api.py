"""Drive tests/fakes/wechat_api.FakeWeChatAPI through wechatpy's real client."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from tests.fakes.wechat_api import FakeWeChatAPI

OPENID = "oUser0000000000000000000001"


@pytest.fixture
def fake():
    with FakeWeChatAPI() as api:
        yield api


def make_client(fake: FakeWeChatAPI, appid: str = "wxtestappid", secret: str = "testsecret"):
    class FakeBackedClient(WeChatClient):
        API_BASE_URL = fake.base_url

        def fetch_access_token(self):
            # wechatpy hardcodes https://api.weixin.qq.com/cgi-bin/token here
            return self._fetch_access_token(
                url=fake.base_url + "token",
                params={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": self.secret,
                },
            )

    return FakeBackedClient(appid, secret, auto_retry=False)


def test_base_url_shape(fake):
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.base_url.endswith("/cgi-bin/")


def test_send_text_lands_in_sent_with_chinese_intact(fake):
    client = make_client(fake)
    res = client.message.send_text(OPENID, "你好")
    assert res == {"errcode": 0, "errmsg": "ok"}
    assert fake.sent == [{"touser": OPENID, "msgtype": "text", "text": {"content": "你好"}}]
    assert fake.token_fetches == 1
    assert fake.calls == [
        ("GET", "/cgi-bin/token"),
        ("POST", "/cgi-bin/message/custom/send"),
    ]
    # token is cached by the client: a second send does not refetch
    client.message.send_text(OPENID, "再见")
    assert fake.token_fetches == 1
    assert fake.sent[-1]["text"]["content"] == "再见"


def test_expired_token_raises_42001(fake):
    client = make_client(fake)
    client.message.send_text(OPENID, "你好")
    fake.expire_tokens()
    with pytest.raises(WeChatClientException) as excinfo:
        client.message.send_text(OPENID, "你好")
    assert excinfo.value.errcode == 42001
    assert len(fake.sent) == 1
    # a fresh token works again
    client.fetch_access_token()
    client.message.send_text(OPENID, "你好")
    assert len(fake.sent) == 2
    assert fake.token_fetches == 2


def test_unknown_token_raises_40001(fake):
    client = WeChatClient("wxtestappid", "testsecret", access_token="NOT_ISSUED", auto_retry=False)
    client.API_BASE_URL = fake.base_url
    with pytest.raises(WeChatClientException) as excinfo:
        client.message.send_text(OPENID, "你好")
    assert excinfo.value.errcode == 40001


def test_scripted_failure_45015_then_recovers(fake):
    client = make_client(fake)
    fake.fail_next_send(45015, "response out of time limit or subscription is canceled")
    with pytest.raises(WeChatClientException) as excinfo:
        client.message.send_text(OPENID, "你好")
    assert excinfo.value.errcode == 45015
    assert fake.sent == []
    client.message.send_text(OPENID, "你好")
    assert len(fake.sent) == 1


def test_scripted_failure_times(fake):
    client = make_client(fake)
    fake.fail_next_send(45047, "out of response count limit", times=2)
    for _ in range(2):
        with pytest.raises(WeChatClientException) as excinfo:
            client.message.send_text(OPENID, "你好")
        assert excinfo.value.errcode == 45047
    client.message.send_text(OPENID, "你好")
    assert len(fake.sent) == 1


def test_wrong_secret_gives_40125(fake):
    client = make_client(fake, secret="wrong")
    with pytest.raises(WeChatClientException) as excinfo:
        client.fetch_access_token()
    assert excinfo.value.errcode == 40125
    assert fake.token_fetches == 0


def test_wrong_appid_gives_40013(fake):
    client = make_client(fake, appid="wxwrong")
    with pytest.raises(WeChatClientException) as excinfo:
        client.fetch_access_token()
    assert excinfo.value.errcode == 40013


def _raw_post(url: str, body: bytes) -> dict:
    req = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read().decode("utf-8"))


def test_send_without_touser_is_rejected(fake):
    token = make_client(fake).fetch_access_token()["access_token"]
    url = f"{fake.base_url}message/custom/send?access_token={token}"
    res = _raw_post(url, json.dumps({"msgtype": "text", "text": {"content": "x"}}).encode())
    assert res["errcode"] == 40003
    res = _raw_post(url, json.dumps({"touser": OPENID}).encode())
    assert res["errcode"] != 0
    assert fake.sent == []


def test_unknown_path_is_404_json(fake):
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(fake.base_url + "menu/create")
    assert excinfo.value.code == 404
    assert json.loads(excinfo.value.read().decode()) == {"errcode": -1, "errmsg": "not found"}
    assert fake.calls[-1] == ("GET", "/cgi-bin/menu/create")


def test_start_returns_self_and_stop():
    api = FakeWeChatAPI()
    assert api.start() is api
    url = api.base_url
    api.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "token", timeout=2)


def test_concurrent_sends_are_all_recorded(fake):
    import threading

    client = make_client(fake)
    client.fetch_access_token()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            client.message.send_text(OPENID, f"消息{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert errors == []
    assert sorted(m["text"]["content"] for m in fake.sent) == sorted(f"消息{i}" for i in range(20))
    assert len(fake.calls) == 21
