"""The WeChat webhook through the real Flask app, with requests built as WeChat's server builds them."""
from __future__ import annotations

import http.client
import re
import threading
import time
from typing import Iterator

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from channels.wechat_push import WeChatServer, text_xml
from crm_store.models import ChannelIdentity, Message
from tests.conftest import ACCOUNT, AES_KEY, APP_ID, TOKEN, fixture_xml, make_settings
from web.app import create_app
from workers.runtime import Runtime

OPENID = "oUser0000000000000000000001"

# fixture -> (stored kind, what the reply must contain; None = no reply)
FIXTURE_KINDS = {
    "text": ("text", "绑定"),  # 查积分 before binding a card: asked to bind
    "image": ("image", "图片"),
    "voice": ("voice", None),  # replied to according to its transcript: checked below
    "video": ("video", "视频"),
    "shortvideo": ("video", "视频"),
    "location": ("location", "位置"),
    "link": ("link", "链接"),
    "event_subscribe": ("subscribe", "欢迎关注"),
    "event_subscribe_scene": ("subscribe", "欢迎关注"),
    "event_unsubscribe": ("unsubscribe", None),
    "event_scan": ("scan", None),
    "event_location": ("location_report", None),
    "event_click": ("menu_click", "绑定"),  # MENU_POINTS, not yet a member
    "event_view": ("menu_view", None),
    "unknown_msgtype": ("unknown", None),
    "unknown_future_msgtype": ("unknown", None),
    "unknown_event": ("unknown", None),
}


def post(client, server: WeChatServer, xml: str, **kwargs):  # type: ignore[no-untyped-def]
    query, body = server.push(xml, **kwargs)
    return client.post(f"/webhooks/wechat?{query}", data=body, content_type="text/xml")


def inbound_messages(runtime: Runtime) -> list[Message]:
    with runtime.uow() as uow:
        return list(uow.session.scalars(select(Message).filter_by(direction="in").order_by(Message.id)))


def count(runtime: Runtime, model=Message) -> int:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model))


def test_url_verification_echoes_only_when_signed(client, wechat) -> None:
    assert client.get(f"/webhooks/wechat?{wechat.verification('echo-123')}").data == b"echo-123"
    forged = WeChatServer("wrong-token", APP_ID).verification("echo-123")
    response = client.get(f"/webhooks/wechat?{forged}")
    assert response.status_code == 403 and b"echo-123" not in response.data


@pytest.mark.parametrize("name", sorted(FIXTURE_KINDS))
def test_every_message_and_event_type_is_stored_and_answered(name, client, wechat, runtime) -> None:
    kind, expected = FIXTURE_KINDS[name]
    response = post(client, wechat, fixture_xml(name))
    assert response.status_code == 200
    reply = wechat.read_reply(response.data)
    if expected is None and name != "voice":
        assert reply is None, f"{name} should get no reply, got {reply}"
    elif expected is not None:
        assert reply["MsgType"] == "text" and expected in reply["Content"]
        assert reply["ToUserName"] == OPENID and reply["FromUserName"] == ACCOUNT
    [stored] = inbound_messages(runtime)
    assert stored.kind == kind
    assert stored.raw == fixture_xml(name)  # the payload exactly as received
    assert stored.customer_id is not None


def test_voice_transcript_is_read_as_text(client, wechat, runtime) -> None:
    reply = wechat.read_reply(post(client, wechat, fixture_xml("voice")).data)
    [stored] = inbound_messages(runtime)
    assert stored.text  # the fixture carries a Recognition transcript
    assert reply is not None and reply["Content"]


def test_attributes_of_kinds_are_kept(client, wechat, runtime) -> None:
    for name in ("event_subscribe_scene", "event_click", "location", "image"):
        assert post(client, wechat, fixture_xml(name)).status_code == 200
    subscribe, click, location, image = inbound_messages(runtime)
    assert subscribe.attributes["scene"] == "campaign2026"
    assert click.attributes["key"] == "MENU_POINTS"
    assert location.attributes["latitude"] and location.attributes["label"]
    assert image.attributes["media_id"]
    with runtime.uow() as uow:
        identity = uow.identities.find("wechat", ACCOUNT, OPENID)
        assert identity.subscribed and identity.subscribe_scene == "campaign2026"


def test_one_customer_across_messages_and_unsubscribe(client, wechat, runtime) -> None:
    for name in ("event_subscribe", "text", "event_unsubscribe"):
        post(client, wechat, fixture_xml(name))
    assert count(runtime, ChannelIdentity) == 1
    assert len({m.customer_id for m in inbound_messages(runtime)}) == 1
    with runtime.uow() as uow:
        assert uow.identities.find("wechat", ACCOUNT, OPENID).subscribed is False


@pytest.mark.parametrize("name", ["text", "event_subscribe", "event_click"])
def test_retries_get_the_same_reply_and_store_nothing_new(name, client, wechat, runtime) -> None:
    xml = fixture_xml(name)
    replies = [post(client, wechat, xml).data for _ in range(3)]  # WeChat retries 3 times
    # The reply's CreateTime is the time of each answer; what it says must be the same.
    contents = [(wechat.read_reply(r) or {}).get("Content") for r in replies]
    assert contents[0] == contents[1] == contents[2]
    assert len(inbound_messages(runtime)) == 1
    assert count(runtime) == (2 if contents[0] else 1)  # the inbound and at most one reply


def test_distinct_events_of_one_second_are_distinct(client, wechat, runtime) -> None:
    post(client, wechat, fixture_xml("event_subscribe"))
    post(client, wechat, fixture_xml("event_click"))  # same user and CreateTime, another event
    assert len(inbound_messages(runtime)) == 2


def test_safe_mode_decrypts_and_encrypts(tmp_path, database_url, redis_url, redis) -> None:
    settings = make_settings(tmp_path, database_url, redis_url, wechat_aes_key=AES_KEY)
    runtime = Runtime.build(settings)
    client = create_app(settings, runtime).test_client()
    server = WeChatServer(TOKEN, APP_ID, AES_KEY)
    response = post(client, server, fixture_xml("text"))
    assert response.status_code == 200
    assert b"<Encrypt>" in response.data and "绑卡".encode() not in response.data
    assert "绑卡" in server.read_reply(response.data)["Content"]
    assert inbound_messages(runtime)[0].text == "你好，我想查积分"
    # A push whose msg_signature does not match the encrypted body is refused, nothing stored.
    query, body = server.push(fixture_xml("image"))
    tampered = query.replace("msg_signature=", "msg_signature=0")
    assert client.post(f"/webhooks/wechat?{tampered}", data=body).status_code == 403
    # A plain push to a safe-mode account is refused too.
    assert post(client, WeChatServer(TOKEN, APP_ID), fixture_xml("link")).status_code == 400
    # Encrypted with another account's key: decryption fails cleanly.
    other = WeChatServer(TOKEN, APP_ID, "Z" * 43)
    assert post(client, other, fixture_xml("voice")).status_code in (400, 403)
    assert len(inbound_messages(runtime)) == 1
    runtime.engine.dispose()


def test_unique_dedupe_key_is_enforced_by_the_store(client, wechat, runtime) -> None:
    post(client, wechat, fixture_xml("text"))
    with runtime.uow() as uow:
        first = inbound_messages(runtime)[0]
        uow.messages.add(Message(conversation_id=first.conversation_id, customer_id=first.customer_id,
                                 direction="in", kind="text", dedupe_key=first.dedupe_key))
        from sqlalchemy.exc import IntegrityError
        with pytest.raises(IntegrityError):
            uow.flush()


def _assert_refused(response, status: int, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status
    assert b"Traceback" not in response.data and b"File \"" not in response.data
    assert count(runtime) == 0


def test_missing_or_wrong_signature_is_403(client, wechat, runtime) -> None:
    body = fixture_xml("text").encode()
    _assert_refused(client.post("/webhooks/wechat", data=body), 403, runtime)
    query, body = WeChatServer("not-our-token", APP_ID).push(fixture_xml("text"))
    _assert_refused(client.post(f"/webhooks/wechat?{query}", data=body), 403, runtime)
    query, body = wechat.push(fixture_xml("text"))
    forged = re.sub(r"signature=[0-9a-f]+", "signature=" + "0" * 40, query)
    _assert_refused(client.post(f"/webhooks/wechat?{forged}", data=body), 403, runtime)


def test_timestamp_outside_window_is_403(client, wechat, runtime) -> None:
    stale = int(time.time()) - 3600
    query, body = wechat.push(fixture_xml("text"), timestamp=stale)
    _assert_refused(client.post(f"/webhooks/wechat?{query}", data=body), 403, runtime)


@pytest.mark.parametrize("body", [
    "",
    "   ",
    "<xml><ToUserName>unclosed",
    "not xml at all",
    "<xml><ToUserName><![CDATA[gh_brand0001]]></ToUserName></xml>",  # no MsgType
    "<other><MsgType>text</MsgType></other>",  # not WeChat's root element
    "<xml><MsgType><a>1</a></MsgType><FromUserName>x</FromUserName></xml>",  # nested MsgType
    "<xml><MsgType>text</MsgType><Content>no user</Content><MsgId>1</MsgId></xml>",  # no From/To
    "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName><CreateTime>soon</CreateTime>"
    "<MsgType>text</MsgType><Content>x</Content><MsgId>2</MsgId></xml>",  # CreateTime not a number
    *(f"<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName><CreateTime>{t}</CreateTime>"
      f"<MsgType>text</MsgType><Content>x</Content><MsgId>4</MsgId></xml>"  # CreateTime beyond any date
      for t in (10**20, -10**20, 253402300800)),
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName><CreateTime>1</CreateTime>"
    "<MsgType>text</MsgType><Content>&lol2;</Content><MsgId>3</MsgId></xml>",  # entity expansion
    '<!DOCTYPE xml SYSTEM "file:///etc/passwd"><xml/>',  # external entity
])
def test_malformed_payloads_are_400(body, client, wechat, runtime) -> None:
    query, _ = wechat.push("<xml/>")
    _assert_refused(client.post(f"/webhooks/wechat?{query}", data=body.encode()), 400, runtime)


def test_invalid_utf8_is_400(client, wechat, runtime) -> None:
    query, _ = wechat.push("<xml/>")
    _assert_refused(client.post(f"/webhooks/wechat?{query}", data=b"<xml>\xff\xfe</xml>"), 400, runtime)


def test_body_over_the_limit_is_413(client, wechat, runtime) -> None:
    huge = text_xml(ACCOUNT, OPENID, "长" * 30_000, 42)  # about 90 KiB of UTF-8
    query, body = wechat.push(huge)
    _assert_refused(client.post(f"/webhooks/wechat?{query}", data=body), 413, runtime)


@pytest.fixture()
def live_url(settings, runtime) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app behind a real HTTP server on loopback (werkzeug's, which reads chunked bodies)."""
    server = make_server("127.0.0.1", 0, create_app(settings, runtime), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def _post_chunked(address: str, query: str, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(address, timeout=10)
    try:
        connection.request("POST", f"/webhooks/wechat?{query}", body=iter([body[i:i + 4096]
                                                                           for i in range(0, len(body), 4096)]),
                           headers={"Content-Type": "text/xml"}, encode_chunked=True)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_chunked_body_over_the_limit_is_413(live_url, wechat, runtime) -> None:
    query, body = wechat.push(text_xml(ACCOUNT, OPENID, "长" * 30_000, 43))  # about 90 KiB, no Content-Length
    status, _ = _post_chunked(live_url, query, body)
    assert status == 413 and count(runtime) == 0
    query, body = wechat.push(text_xml(ACCOUNT, OPENID, "你好", 44))  # a small chunked body is served
    status, reply = _post_chunked(live_url, query, body)
    assert status == 200 and wechat.read_reply(reply)["Content"]
    assert [m.text for m in inbound_messages(runtime)] == ["你好"]


def test_signed_query_reused_with_another_body_is_403(settings, runtime, client, wechat) -> None:
    query, body = wechat.push(text_xml(ACCOUNT, OPENID, "你好", 51))
    first = client.post(f"/webhooks/wechat?{query}", data=body)
    assert first.status_code == 200
    # WeChat's retry: the same query and body get the same answer, and nothing is stored twice.
    again = client.post(f"/webhooks/wechat?{query}", data=body)
    assert again.status_code == 200 and wechat.read_reply(again.data)["Content"] == \
        wechat.read_reply(first.data)["Content"]
    # The captured query with another body, for another openid, through another web process.
    forged = text_xml(ACCOUNT, "oSomeoneElse00000000000000", "帮我绑卡 13912345678", 52)
    other_process = create_app(settings, Runtime.build(settings)).test_client()
    refused = other_process.post(f"/webhooks/wechat?{query}", data=forged.encode())
    assert refused.status_code == 403
    # The same, keeping the first message's MsgId: not a retry either, and its reply is not given away.
    same_id = text_xml(ACCOUNT, "oSomeoneElse00000000000000", "查积分", 51)
    refused = client.post(f"/webhooks/wechat?{query}", data=same_id.encode())
    assert refused.status_code == 403 and "积分" not in refused.get_data(as_text=True)
    assert [m.external_id for m in inbound_messages(runtime)] == ["51"]
    assert count(runtime, ChannelIdentity) == 1


def test_replay_check_holds_while_redis_is_down(tmp_path, database_url, redis) -> None:
    settings = make_settings(tmp_path, database_url, f"unix://{tmp_path}/no-such-redis.sock")
    runtime = Runtime.build(settings)
    client = create_app(settings, runtime).test_client()
    query, body = WeChatServer(TOKEN, APP_ID).push(text_xml(ACCOUNT, OPENID, "你好", 61))
    assert client.post(f"/webhooks/wechat?{query}", data=body).status_code == 200
    forged = text_xml(ACCOUNT, "oSomeoneElse00000000000000", "你好", 62).encode()
    assert client.post(f"/webhooks/wechat?{query}", data=forged).status_code == 403
    assert [m.external_id for m in inbound_messages(runtime)] == ["61"]
    runtime.engine.dispose()


def test_redis_down_still_records_and_answers(tmp_path, database_url, redis) -> None:
    settings = make_settings(tmp_path, database_url, f"unix://{tmp_path}/no-such-redis.sock")
    runtime = Runtime.build(settings)
    client = create_app(settings, runtime).test_client()
    server = WeChatServer(TOKEN, APP_ID)
    response = post(client, server, fixture_xml("text"))
    assert response.status_code == 200 and server.read_reply(response.data)["Content"]
    assert len(inbound_messages(runtime)) == 1
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["checks"]["redis"].startswith("error")
    runtime.engine.dispose()


def test_store_down_is_503_and_stores_nothing(tmp_path, redis_url, redis) -> None:
    """PostgreSQL unreachable (nothing listens on the port): a clear 503 to retry, not a 500."""
    settings = make_settings(tmp_path, "postgresql+psycopg://crmbot@127.0.0.1:1/crmbot", redis_url)
    runtime = Runtime.build(settings)
    client = create_app(settings, runtime).test_client()
    response = post(client, WeChatServer(TOKEN, APP_ID), fixture_xml("text"))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "store" in response.json["detail"] and b"Traceback" not in response.data
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["checks"]["store"].startswith("error")
    runtime.engine.dispose()


def test_health_and_readiness(client) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"] == {"store": "ok", "redis": "ok"}


def test_unknown_route_is_json_404(client) -> None:
    response = client.get("/webhooks/nope")
    assert response.status_code == 404 and response.json["error"] == "Not Found"


def test_webhooks_open_no_cookie_session(settings, runtime) -> None:
    from flask import session
    from flask.sessions import NullSession, SecureCookieSession

    app = create_app(settings, runtime)
    with app.test_request_context("/webhooks/wechat", method="POST"):
        assert isinstance(session._get_current_object(), NullSession)  # type: ignore[attr-defined]
    with app.test_request_context("/console/"):
        assert isinstance(session._get_current_object(), SecureCookieSession)  # type: ignore[attr-defined]


def test_platform_pushes_are_never_rate_limited(client, wechat, runtime) -> None:
    """A platform answered 429 retries and then drops the message: even an app-wide default
    limit, which holds for every other route, lets the platform's pushes through."""
    from web.extensions import limiter

    app = client.application
    app.config["RATELIMIT_DEFAULT"] = "1 per day"
    limiter.init_app(app)  # reads the default limit again; the limiter is shared by every app
    try:
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz").status_code == 429  # the default limit is in force
        for n in range(5):
            reply = post(client, wechat, text_xml(ACCOUNT, OPENID, f"你好 {n}", 9_100_000 + n))
            assert reply.status_code == 200, reply.data
    finally:
        limiter.limit_manager.set_default_limits([])
    assert count(runtime) == 10  # five pushes and five replies
