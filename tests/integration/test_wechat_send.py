"""Customer-service sends against a local fake of WeChat's API: token sharing and refresh,
45015/45047, and the send job run by a real rq worker process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Iterator

import pytest

from channels.base import OutboundMessage, QuotaExceeded, RecipientUnreachable, SendFailed
from channels.wechat import WeChatSender
from channels.wechat_push import WeChatServer
from crm_store import models
from tests.conftest import APP_ID, TOKEN, fixture_xml, make_settings
from tests.fakes.wechat_api import FakeWeChatAPI
from web.app import create_app
from workers import jobs
from workers.runtime import Runtime

OPENID = "oUser0000000000000000000001"
SECRET = "testsecret"


@pytest.fixture()
def fake_api() -> Iterator[FakeWeChatAPI]:
    with FakeWeChatAPI(APP_ID, SECRET) as fake:
        yield fake


def outbound(text: str = "您的工单已处理") -> OutboundMessage:
    return OutboundMessage("wechat", "gh_brand0001", OPENID, text, idempotency_key="t-1")


def test_token_is_fetched_once_and_shared_through_redis(fake_api, redis) -> None:
    web_process = WeChatSender(APP_ID, SECRET, fake_api.base_url, redis)
    worker_process = WeChatSender(APP_ID, SECRET, fake_api.base_url, redis)
    web_process.send(outbound("一"))
    worker_process.send(outbound("二"))
    assert fake_api.token_fetches == 1
    assert [m["text"]["content"] for m in fake_api.sent] == ["一", "二"]
    assert fake_api.sent[0]["touser"] == OPENID and fake_api.sent[0]["msgtype"] == "text"


@pytest.mark.parametrize("invalidate", ["expired", "unknown"])
def test_rejected_token_is_refreshed_once(invalidate, fake_api, redis) -> None:
    sender = WeChatSender(APP_ID, SECRET, fake_api.base_url, redis)
    sender.send(outbound("先发一条"))
    if invalidate == "expired":
        fake_api.expire_tokens()  # 42001
    else:
        redis.set(f"crmbot:wechat:{APP_ID}_access_token", json.dumps("NOT_A_TOKEN"))  # 40001
    sender.send(outbound("刷新后再发"))
    assert fake_api.token_fetches == 2
    assert fake_api.sent[-1]["text"]["content"] == "刷新后再发"


def test_token_refused_twice_is_a_send_failure_not_a_loop(fake_api, redis) -> None:
    sender = WeChatSender(APP_ID, SECRET, fake_api.base_url, redis)
    fake_api.fail_next_send(40001, "invalid credential", times=5)
    with pytest.raises(SendFailed) as failure:
        sender.send(outbound())
    assert failure.value.code == 40001 and fake_api.token_fetches == 2


def test_window_closed_and_quota_are_distinct_errors(fake_api, redis) -> None:
    sender = WeChatSender(APP_ID, SECRET, fake_api.base_url, redis)
    fake_api.fail_next_send(45015, "response out of time limit or subscription is canceled")
    with pytest.raises(RecipientUnreachable, match="48 hours"):
        sender.send(outbound())
    fake_api.fail_next_send(45047, "out of response count limit")
    with pytest.raises(QuotaExceeded, match="quota"):
        sender.send(outbound())
    assert fake_api.sent == []


def test_unreachable_api_is_a_send_failure(redis) -> None:
    sender = WeChatSender(APP_ID, SECRET, "http://127.0.0.1:9/cgi-bin/", redis, timeout=2)
    with pytest.raises(SendFailed, match="unreachable"):
        sender.send(outbound())


@pytest.fixture()
def send_runtime(tmp_path, database_url, redis_url, redis, fake_api) -> Iterator[Runtime]:
    settings = make_settings(tmp_path, database_url, redis_url, wechat_api_base=fake_api.base_url,
                             wechat_app_secret=SECRET)
    rt = Runtime.build(settings)
    # A customer and a conversation, made by a real inbound message.
    client = create_app(settings, rt).test_client()
    query, body = WeChatServer(TOKEN, APP_ID).push(fixture_xml("text"))
    assert client.post(f"/webhooks/wechat?{query}", data=body).status_code == 200
    yield rt
    jobs.RUNTIME = None
    rt.engine.dispose()


def conversation_id(rt: Runtime) -> int:
    with rt.uow() as uow:
        identity = uow.identities.find("wechat", "gh_brand0001", OPENID)
        return uow.conversations.open_for(identity.id).id


def delivery(rt: Runtime, message_id: int) -> tuple[str, str | None, int]:
    with rt.uow() as uow:
        m = uow.messages.get(message_id)
        return m.delivery, m.delivery_error, m.attempts


def run_worker(rt: Runtime, fake_api: FakeWeChatAPI) -> None:
    s = rt.settings
    env = {**os.environ, "CRMBOT_DATABASE_URL": s.database_url, "CRMBOT_REDIS_URL": s.redis_url,
           "CRMBOT_VAR_DIR": str(s.var_dir), "CRMBOT_WECHAT_TOKEN": s.wechat_token,
           "CRMBOT_WECHAT_APP_ID": s.wechat_app_id, "CRMBOT_WECHAT_APP_SECRET": s.wechat_app_secret,
           "CRMBOT_WECHAT_API_BASE": fake_api.base_url, "CRMBOT_SECRET_KEY": s.secret_key}
    done = subprocess.run([sys.executable, "-m", "web.cli", "worker", "--burst"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_queued_reply_is_sent_by_a_real_worker(send_runtime, fake_api) -> None:
    message_id = jobs.queue_reply(send_runtime, conversation_id(send_runtime), "您好，客服已回复", author="agent:1")
    assert delivery(send_runtime, message_id)[0] == models.QUEUED
    run_worker(send_runtime, fake_api)
    assert delivery(send_runtime, message_id) == (models.SENT, None, 1)
    assert [m["text"]["content"] for m in fake_api.sent] == ["您好，客服已回复"]
    # Sending again is a no-op: the message is already sent.
    jobs.enqueue_send(send_runtime.redis, message_id)
    run_worker(send_runtime, fake_api)
    assert len(fake_api.sent) == 1


def test_window_closed_marks_the_message_unreachable(send_runtime, fake_api) -> None:
    fake_api.fail_next_send(45015, "response out of time limit")
    message_id = jobs.queue_reply(send_runtime, conversation_id(send_runtime), "迟到的回复")
    run_worker(send_runtime, fake_api)
    state, error, attempts = delivery(send_runtime, message_id)
    assert state == models.UNREACHABLE and "48 hours" in error and attempts == 1
    assert fake_api.sent == []


def test_failed_sends_are_retried_then_given_up(send_runtime, fake_api) -> None:
    jobs.RUNTIME = send_runtime
    fake_api.fail_next_send(-1, "system busy", times=jobs.MAX_SEND_ATTEMPTS)
    message_id = jobs.queue_reply(send_runtime, conversation_id(send_runtime), "重试")
    for attempt in range(1, jobs.MAX_SEND_ATTEMPTS):
        with pytest.raises(SendFailed):  # raised so that rq retries on its schedule
            jobs.send_outbound(message_id)
        assert delivery(send_runtime, message_id)[:1] == (models.QUEUED,)
    assert jobs.send_outbound(message_id) == models.FAILED
    state, error, attempts = delivery(send_runtime, message_id)
    assert (state, attempts) == (models.FAILED, jobs.MAX_SEND_ATTEMPTS) and "system busy" in error


def test_reply_queued_while_redis_is_down_is_drained_later(send_runtime, fake_api, redis_url) -> None:
    down = Runtime.build(make_settings(send_runtime.settings.var_dir.parent / "down", send_runtime.settings.database_url,
                                       f"unix://{send_runtime.settings.var_dir}/no-redis.sock"))
    message_id = jobs.queue_reply(down, conversation_id(send_runtime), "Redis 恢复后发送")
    assert delivery(send_runtime, message_id)[0] == models.QUEUED
    jobs.RUNTIME = send_runtime
    assert jobs.drain_outbox() == 1
    run_worker(send_runtime, fake_api)
    assert delivery(send_runtime, message_id)[0] == models.SENT
    down.engine.dispose()
