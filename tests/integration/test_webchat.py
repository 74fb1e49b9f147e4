"""Web chat (issue 13): the /chat page and its JSON routes over the real app, on both stores."""
from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

from channels import webchat
from crm_store import models, services, staff
from crm_store.models import ChannelIdentity, Message, Ticket
from workers import jobs


class Visitor:
    """One browser on /chat: its cookie jar is its identity."""

    def __init__(self, client) -> None:  # type: ignore[no-untyped-def]
        self.client = client
        page = client.get("/chat")
        assert page.status_code == 200
        self.csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
        self.cursor = 0

    def post(self, body=None, client_id: str | None = None, **kwargs):  # type: ignore[no-untyped-def]
        headers = {"X-CSRFToken": self.csrf, **kwargs.pop("headers", {})}
        if body is None:
            body = {"text": kwargs.pop("text"), "client_id": client_id or str(uuid.uuid4())}
        return self.client.post("/chat/messages", json=body, headers=headers, **kwargs)

    def says(self, text: str) -> str:
        response = self.post(text=text)
        assert response.status_code == 200, response.json
        return response.json["reply"]

    def poll(self, after: int | None = None) -> list[dict]:
        response = self.client.get(f"/chat/messages?after={self.cursor if after is None else after}")
        assert response.status_code == 200
        self.cursor = response.json["cursor"]
        return response.json["messages"]


def count(runtime, *where) -> int:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(Message).where(*where))


def webchat_customers(runtime) -> list[int]:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        return list(uow.session.scalars(select(ChannelIdentity.customer_id).filter_by(channel="webchat")))


@pytest.fixture()
def visitor(client) -> Visitor:  # type: ignore[no-untyped-def]
    return Visitor(client)


def another_visitor(client) -> Visitor:  # type: ignore[no-untyped-def]
    return Visitor(client.application.test_client())  # another browser: its own cookie jar


COMPLAINT = "我昨天买的奶茶里有异物，孩子喝了肚子疼"


def test_the_page_is_chinese_embeddable_and_escapes_nothing_into_html(client) -> None:
    page = client.get("/chat")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert all(words in page.text for words in ("在线客服", "发送", "输入消息", 'lang="zh-CN"'))
    assert "X-Frame-Options" not in page.headers  # a brand's site may frame it
    assert "frame-ancestors" not in page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "session=" in page.headers["Set-Cookie"]  # the visitor's identity and CSRF token
    for asset in ("/static/chat/chat.js", "/static/chat/chat.css"):
        assert client.get(asset).status_code == 200, asset
    script = client.get("/static/chat/chat.js").text
    assert "innerHTML" not in script and "textContent" in script
    source = (client.application.root_path + "/templates/chat/chat.html")
    assert "|safe" not in open(source, encoding="utf-8").read().replace(" ", "")


def test_a_complaint_in_chat_opens_a_ticket_and_is_answered(visitor, runtime) -> None:
    response = visitor.post(text=f"  {COMPLAINT}\n")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.json
    external_id = visitor_identity(runtime)
    with runtime.uow() as uow:
        [ticket] = uow.session.scalars(select(Ticket)).all()
        identity = uow.identities.find("webchat", "web", external_id)
    assert "工单号" in body["reply"] and ticket.reference in body["reply"]
    assert ticket.source == "complaint" and ticket.customer_id == identity.customer_id
    inbound, reply = body["messages"]
    assert (inbound["direction"], inbound["author"], inbound["text"]) == ("in", "customer", COMPLAINT)
    assert (reply["direction"], reply["author"], reply["delivery"], reply["text"]) == (
        "out", "bot", "passive", body["reply"])
    assert reply["id"] > inbound["id"]
    assert [m["id"] for m in visitor.poll()] == [inbound["id"], reply["id"]]


def visitor_identity(runtime) -> str:  # type: ignore[no-untyped-def]
    with runtime.uow() as uow:
        [external_id] = uow.session.scalars(select(ChannelIdentity.external_id).filter_by(channel="webchat")).all()
    assert webchat.is_visitor_id(external_id)
    return external_id


def test_english_gets_english(visitor, runtime) -> None:
    assert "10:00-22:00" in visitor.says("what time do you open?")
    reply = visitor.says("my iced latte arrived warm and half spilled")
    with runtime.uow() as uow:
        reference = uow.session.scalar(select(Ticket.reference))
    assert reference in reply and "sorry" in reply.lower() and "工单" not in reply


def test_a_retried_post_is_stored_once_and_gets_the_same_answer(visitor, client, runtime) -> None:
    client_id = str(uuid.uuid4())
    first = visitor.post(text=COMPLAINT, client_id=client_id)
    again = visitor.post(text=COMPLAINT, client_id=client_id.upper())  # the same id, however written
    assert first.status_code == again.status_code == 200
    assert again.json == first.json
    assert count(runtime, Message.direction == "in") == 1 and count(runtime, Message.direction == "out") == 1
    with runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Ticket)) == 1
    # Another visitor sending the same id is another message, and learns nothing of the first.
    other = another_visitor(client).post(text="你好", client_id=client_id)
    assert other.status_code == 200 and other.json["reply"] != first.json["reply"]
    assert other.json["messages"][0]["id"] not in [m["id"] for m in first.json["messages"]]
    assert count(runtime, Message.direction == "in") == 2


def test_a_visitor_stays_one_customer_and_two_visitors_are_two(visitor, client, runtime) -> None:
    visitor.says("你好")
    visitor.says("积分怎么查")
    assert len(webchat_customers(runtime)) == 1
    with runtime.uow() as uow:
        conversations = uow.session.scalars(select(Message.conversation_id).filter_by(direction="in")).all()
    assert len(set(conversations)) == 1
    another_visitor(client).says("你好")
    assert len(set(webchat_customers(runtime))) == 2


def test_a_poll_returns_only_the_visitors_own_messages(visitor, client, runtime) -> None:
    other = another_visitor(client)
    other.says("我是另一个访客")
    visitor.says("我的秘密：手机13812345678")
    mine, theirs = visitor.poll(after=0), other.poll(after=0)
    assert [m["text"] for m in mine if m["direction"] == "in"] == ["我的秘密：手机13812345678"]
    assert [m["text"] for m in theirs if m["direction"] == "in"] == ["我是另一个访客"]
    assert len(mine) == len(theirs) == 2 and not {m["id"] for m in mine} & {m["id"] for m in theirs}
    # No id reaches another visitor's messages: ``after`` only moves within one's own.
    assert visitor.poll(after=min(m["id"] for m in theirs) - 1) == mine
    assert other.poll(after=0) == theirs
    # A browser that never opened the page has no conversation, and a poll makes no identity.
    stranger = client.application.test_client().get("/chat/messages?after=0")
    assert stranger.status_code == 200 and stranger.json["messages"] == []
    assert len(webchat_customers(runtime)) == 2
    for bad in ("-1", "x", "1.5"):
        assert client.get(f"/chat/messages?after={bad}").status_code == 400


def test_an_agent_reply_reaches_the_open_page(visitor, runtime, monkeypatch) -> None:
    monkeypatch.setattr("web.chat.SETTLE", __import__("datetime").timedelta(0))  # the cursor moves at once
    monkeypatch.setattr(jobs, "RUNTIME", runtime)
    visitor.says(COMPLAINT)
    seen = visitor.poll()
    with runtime.uow() as uow:
        staff.create_user("alice", "agent", "alice-password-long", uow)
        ticket_id = uow.session.scalar(select(Ticket.id))
        message_id = services.reply_to_ticket(ticket_id, "alice", "您好，我是客服小王，已为您安排退款", uow)
        uow.commit()
    visitor.says("请尽快处理")  # the bot answers after the agent's message was queued
    before = visitor.poll()
    assert message_id not in [m["id"] for m in before]  # queued: not sent yet, not shown
    assert visitor.cursor < message_id  # and the cursor waits for it
    assert jobs.send_outbound(message_id) == models.SENT
    [agent] = [m for m in visitor.poll() if m["id"] == message_id]
    assert (agent["author"], agent["delivery"], agent["text"]) == ("agent", "sent", "您好，我是客服小王，已为您安排退款")
    assert "alice" not in str(agent)  # the staff login stays inside
    assert visitor.cursor >= message_id and visitor.poll() == []
    assert [m["id"] for m in seen] == sorted(m["id"] for m in seen)
    with runtime.uow() as uow:
        assert uow.messages.get(message_id).delivery == models.SENT


def test_an_api_reply_reaches_the_page_through_a_real_worker(visitor, client, runtime) -> None:
    """The owner's path: a complaint typed in chat, an agent claims and replies through the API,
    `crmbot worker` sends it, the page's poll shows it as sent."""
    import os
    import subprocess
    import sys

    visitor.says(COMPLAINT)
    with runtime.uow() as uow:
        staff.create_user("alice", "agent", "alice-password-long", uow)
        token = staff.create_token("alice", uow)
        reference = uow.session.scalar(select(Ticket.reference))
        uow.commit()
    agent = {"Authorization": f"Bearer {token}"}
    reply = client.post(f"/api/v1/tickets/{reference}/reply", headers=agent, json={"text": "已为您登记退款"})
    assert reply.status_code == 202
    assert reply.json["message_id"] not in [m["id"] for m in visitor.poll(after=0)]
    s = runtime.settings
    env = {**os.environ, "CRMBOT_DATABASE_URL": s.database_url, "CRMBOT_REDIS_URL": s.redis_url,
           "CRMBOT_VAR_DIR": str(s.var_dir), "CRMBOT_WECHAT_TOKEN": s.wechat_token,
           "CRMBOT_WECHAT_APP_ID": s.wechat_app_id, "CRMBOT_SECRET_KEY": s.secret_key}
    done = subprocess.run([sys.executable, "-m", "web.cli", "worker", "--burst"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    [shown] = [m for m in visitor.poll(after=0) if m["id"] == reply.json["message_id"]]
    assert (shown["author"], shown["delivery"], shown["text"]) == ("agent", "sent", "已为您登记退款")
    detail = client.get(f"/api/v1/tickets/{reference}", headers=agent).json
    assert [m["delivery"] for m in detail["messages"] if m["author"] == "agent:alice"] == ["sent"]


@pytest.mark.parametrize("body", [
    {"text": "", "client_id": "00000000-0000-4000-8000-000000000001"},
    {"text": " \n\t ", "client_id": "00000000-0000-4000-8000-000000000001"},
    {"text": "好" * 2001, "client_id": "00000000-0000-4000-8000-000000000001"},
    {"text": "你好"},
    {"text": "你好", "client_id": "not-a-uuid"},
    {"text": "你好", "client_id": 12345},
    {"text": 12345, "client_id": "00000000-0000-4000-8000-000000000001"},
    {"text": "\ud800", "client_id": "00000000-0000-4000-8000-000000000001"},  # a lone surrogate
    ["你好"],
    "你好",
], ids=["empty", "blank", "2001-chars", "no-client-id", "bad-client-id", "numeric-client-id", "numeric-text",
        "lone-surrogate", "a-list", "a-string"])
def test_bad_input_is_400_and_stores_nothing(visitor, runtime, body) -> None:
    response = visitor.post(body)
    assert response.status_code == 400 and response.mimetype == "application/json"
    assert response.json["detail"]
    assert count(runtime) == 0 and webchat_customers(runtime) == []


def test_a_body_that_is_not_json_is_400(visitor, runtime) -> None:
    for data, content_type in (("text=你好", "application/x-www-form-urlencoded"), ('{"text": "你好",', "application/json"),
                               (b"\xff\xfe", "application/json")):
        response = visitor.client.post("/chat/messages", data=data, content_type=content_type,
                                       headers={"X-CSRFToken": visitor.csrf})
        assert response.status_code == 400, data
    assert count(runtime) == 0


def test_the_longest_message_and_control_characters(visitor, runtime) -> None:
    longest = visitor.post(text="好" * 2000)
    assert longest.status_code == 200 and longest.json["messages"][0]["text"] == "好" * 2000
    nul = visitor.post(text="你\x00好\x07")  # PostgreSQL cannot store NUL: dropped, not a 500
    assert nul.status_code == 200 and nul.json["messages"][0]["text"] == "你好"
    assert count(runtime, Message.direction == "in") == 2


def test_a_post_without_the_csrf_token_is_400(visitor, runtime) -> None:
    body = {"text": "你好", "client_id": str(uuid.uuid4())}
    missing = visitor.client.post("/chat/messages", json=body)
    assert missing.status_code == 400 and "CSRF" in missing.json["detail"]
    forged = visitor.client.post("/chat/messages", json=body, headers={"X-CSRFToken": "forged"})
    assert forged.status_code == 400
    # A token from another browser's session is no good either.
    stranger = another_visitor(visitor.client)
    assert visitor.client.post("/chat/messages", json=body, headers={"X-CSRFToken": stranger.csrf}
                               ).status_code == 400
    assert count(runtime) == 0
    assert visitor.post(body).status_code == 200  # with its own token, it lands


def test_too_many_messages_are_429(visitor, client, runtime) -> None:
    for n in range(30):
        assert visitor.post(text=f"你好{n}").status_code == 200
    refused = visitor.post(text="再来一条")
    assert refused.status_code == 429 and refused.mimetype == "application/json"
    assert count(runtime, Message.text == "再来一条") == 0
    assert another_visitor(client).post(text="我是别人").status_code == 200  # counted per visitor


def test_polling_faster_than_the_page_does_is_429(visitor, client) -> None:
    visitor.post(text="你好")
    for _ in range(120):
        assert visitor.client.get("/chat/messages?after=0").status_code == 200
    assert visitor.client.get("/chat/messages?after=0").status_code == 429
    assert another_visitor(client).client.get("/chat/messages?after=0").status_code == 200  # per visitor


def test_markup_comes_back_as_text(visitor, client) -> None:
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    response = visitor.post(text=payload)
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.json["messages"][0]["text"] == payload  # as typed; the page sets it as textContent
    assert payload in [m["text"] for m in visitor.poll(after=0)]
    assert "<script>alert" not in client.get("/chat").text  # the page never renders a message itself


def test_a_store_outage_is_503_and_the_page_may_retry(tmp_path, redis_url, redis) -> None:
    from tests.conftest import make_settings
    from web.app import create_app
    from workers.runtime import Runtime

    settings = make_settings(tmp_path, "postgresql+psycopg://crmbot@127.0.0.1:1/crmbot", redis_url)
    runtime = Runtime.build(settings)
    try:
        response = Visitor(create_app(settings, runtime).test_client()).post(text="你好")
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert "store" in response.json["detail"]
    finally:
        runtime.engine.dispose()
