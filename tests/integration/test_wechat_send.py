"""Customer-service sends against a local fake of WeChat's API: token sharing and refresh,
45015/45047, and the send job run by a real rq worker process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from sqlalchemy.exc import OperationalError

from channels.base import OutboundMessage, QuotaExceeded, RecipientUnreachable, SendFailed
from channels.wechat import WeChatSender
from channels.wechat_push import WeChatServer, text_xml
from crm_store import models, outbox
from tests.conftest import APP_ID, TOKEN, fixture_xml, make_settings
from tests.fakes.wechat_api import FakeWeChatAPI
from web.app import create_app
from workers import jobs
from workers.runtime import EmbeddedRedis, Runtime

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


def worker_env(rt: Runtime, fake_api: FakeWeChatAPI) -> dict[str, str]:
    s = rt.settings
    return {**os.environ, "CRMBOT_DATABASE_URL": s.database_url, "CRMBOT_REDIS_URL": s.redis_url,
            "CRMBOT_VAR_DIR": str(s.var_dir), "CRMBOT_WECHAT_TOKEN": s.wechat_token,
            "CRMBOT_WECHAT_APP_ID": s.wechat_app_id, "CRMBOT_WECHAT_APP_SECRET": s.wechat_app_secret,
            "CRMBOT_WECHAT_API_BASE": fake_api.base_url, "CRMBOT_SECRET_KEY": s.secret_key}


def run_worker(rt: Runtime, fake_api: FakeWeChatAPI) -> None:
    done = subprocess.run([sys.executable, "-m", "web.cli", "worker", "--burst"], env=worker_env(rt, fake_api),
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


@pytest.mark.parametrize("errcode, state, says", [(45015, models.UNREACHABLE, "48 hours"),
                                                   (45047, models.QUOTA_EXCEEDED, "quota")])
def test_window_closed_and_quota_are_distinct_states(send_runtime, fake_api, errcode, state, says) -> None:
    fake_api.fail_next_send(errcode, "refused")
    message_id = jobs.queue_reply(send_runtime, conversation_id(send_runtime), "迟到的回复")
    run_worker(send_runtime, fake_api)
    assert delivery(send_runtime, message_id)[0::2] == (state, 1) and says in delivery(send_runtime, message_id)[1]
    assert fake_api.sent == []


def _backoff_over(rt: Runtime, message_id: int) -> None:
    """Time passes: the message's retry is due now."""
    with rt.uow() as uow:
        uow.messages.get(message_id).next_attempt_at = datetime.now(timezone.utc) - timedelta(seconds=1)
        uow.commit()


def test_failed_sends_wait_out_their_backoff_then_are_given_up(send_runtime, fake_api) -> None:
    jobs.RUNTIME = send_runtime
    fake_api.fail_next_send(-1, "system busy", times=outbox.MAX_ATTEMPTS)
    message_id = jobs.queue_reply(send_runtime, conversation_id(send_runtime), "重试")
    for attempt, wait in enumerate(outbox.BACKOFF, start=1):
        before = datetime.now(timezone.utc)
        assert jobs.send_outbound(message_id) == models.QUEUED
        with send_runtime.uow() as uow:
            retry_at = uow.messages.get(message_id).next_attempt_at.replace(tzinfo=timezone.utc)
        assert before + timedelta(seconds=wait) <= retry_at <= before + timedelta(seconds=wait + 5)
        # The backoff holds: neither a second job nor the outbox drain sends it early.
        assert jobs.send_outbound(message_id) == "skipped" and jobs.drain_outbox() == 0
        assert delivery(send_runtime, message_id)[2] == attempt
        _backoff_over(send_runtime, message_id)
    assert jobs.send_outbound(message_id) == models.FAILED
    state, error, attempts = delivery(send_runtime, message_id)
    assert (state, attempts) == (models.FAILED, outbox.MAX_ATTEMPTS) and "system busy" in error
    assert jobs.drain_outbox() == 0


def test_a_send_is_claimed_by_one_worker_at_a_time(send_runtime, fake_api) -> None:
    message_id = jobs.queue_reply(send_runtime, conversation_id(send_runtime), "只发一次")
    with send_runtime.uow() as uow:
        first = outbox.claim_send(message_id, uow)
        uow.commit()
    with send_runtime.uow() as uow:
        assert outbox.claim_send(message_id, uow) is None  # another worker finds it taken
    assert first is not None and first.attempt == 1
    assert first.outbound.idempotency_key == f"message-{message_id}"
    jobs.RUNTIME = send_runtime
    assert jobs.send_outbound(message_id) == "skipped" and jobs.drain_outbox() == 0
    assert fake_api.sent == []


def test_sent_but_not_recorded_is_unknown_and_never_sent_again(send_runtime, fake_api, monkeypatch) -> None:
    """The platform took the message, then the store failed before the outcome was recorded."""
    jobs.RUNTIME = send_runtime
    message_id = jobs.queue_reply(send_runtime, conversation_id(send_runtime), "已发出，未记下")

    def store_down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("UPDATE messages", {}, Exception("the store went away"))

    with monkeypatch.context() as patch:
        patch.setattr(outbox, "record_send", store_down)
        with pytest.raises(OperationalError):
            jobs.send_outbound(message_id)
    assert len(fake_api.sent) == 1 and delivery(send_runtime, message_id)[0] == models.SENDING
    assert jobs.drain_outbox() == 0  # its lease holds: not ours to judge yet
    with send_runtime.uow() as uow:
        uow.messages.get(message_id).lease_expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
        uow.commit()
    assert jobs.drain_outbox() == 0
    state, error, _ = delivery(send_runtime, message_id)
    assert state == models.UNKNOWN and "may or may not" in error
    jobs.enqueue_send(send_runtime.redis, message_id)
    run_worker(send_runtime, fake_api)
    assert len(fake_api.sent) == 1 and delivery(send_runtime, message_id)[0] == models.UNKNOWN


def test_no_answer_from_the_platform_is_unknown_not_retried(send_runtime, fake_api) -> None:
    fake_api.drop_sends = 1  # WeChat takes the message, the answer never arrives
    message_id = jobs.queue_reply(send_runtime, conversation_id(send_runtime), "没有回音")
    run_worker(send_runtime, fake_api)
    state, error, attempts = delivery(send_runtime, message_id)
    assert (state, attempts) == (models.UNKNOWN, 1) and "may have reached" in error
    assert [m["text"]["content"] for m in fake_api.sent] == ["没有回音"]


def test_webhooks_stay_fast_while_a_slow_platform_takes_the_sends(send_runtime, fake_api) -> None:
    """A worker sends through a WeChat API that answers after 3 s; meanwhile other customers'
    webhooks are answered at once: the worker holds no transaction or lock across the call."""
    fake_api.send_delay = 3.0
    for n in range(3):
        jobs.queue_reply(send_runtime, conversation_id(send_runtime), f"慢慢发 {n}")
    worker = subprocess.Popen([sys.executable, "-m", "web.cli", "worker"], env=worker_env(send_runtime, fake_api),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert fake_api.send_started.wait(60), "the worker never called the WeChat API"
        client = create_app(send_runtime.settings, send_runtime).test_client()
        server = WeChatServer(TOKEN, APP_ID)
        took = []
        for n in range(60):
            query, body = server.push(text_xml("gh_brand0001", f"oOther{n:022d}", "你们几点开门？", 9_000 + n))
            started = time.perf_counter()
            assert client.post(f"/webhooks/wechat?{query}", data=body).status_code == 200
            took.append(time.perf_counter() - started)
        assert fake_api.in_flight == 1, "the webhooks did not overlap a send"
    finally:
        worker.terminate()
        worker.wait(30)
    took.sort()
    assert took[int(len(took) * 0.99) - 1] < 0.1, f"p99 {took[int(len(took) * 0.99) - 1]:.3f} s"


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


def _sent_texts(fake_api: FakeWeChatAPI) -> list[str]:
    return [m["text"]["content"] for m in fake_api.sent]


def _until(condition, seconds: float = 60) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_worker_outlives_a_redis_server_that_dies_and_drains_what_waited(tmp_path, database_url, fake_api) -> None:
    """Redis (its own server here) is killed under a running `crmbot worker`, and comes back at
    the same address: the same worker process sends again, including what waited in the outbox."""
    redis_server = EmbeddedRedis(tmp_path / "redis-var").start()
    settings = make_settings(tmp_path, database_url, redis_server.url, wechat_api_base=fake_api.base_url,
                             wechat_app_secret=SECRET)
    rt = Runtime.build(settings)
    client = create_app(settings, rt).test_client()
    query, body = WeChatServer(TOKEN, APP_ID).push(fixture_xml("text"))
    assert client.post(f"/webhooks/wechat?{query}", data=body).status_code == 200
    worker = subprocess.Popen([sys.executable, "-m", "web.cli", "worker"], env=worker_env(rt, fake_api),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        jobs.queue_reply(rt, conversation_id(rt), "第一条")
        assert _until(lambda: _sent_texts(fake_api) == ["第一条"])
        redis_server.process.kill()  # kill -9
        redis_server.process.wait(10)
        waited = jobs.queue_reply(rt, conversation_id(rt), "Redis 不在时排队")  # only the store has it
        assert delivery(rt, waited)[0] == models.QUEUED
        redis_server.start()  # back, empty, at the same address
        jobs.RUNTIME = rt
        assert jobs.drain_outbox() == 1  # what the scheduler does every minute
        jobs.queue_reply(rt, conversation_id(rt), "第三条")
        assert _until(lambda: sorted(_sent_texts(fake_api)) == sorted(["第一条", "Redis 不在时排队", "第三条"])), \
            _sent_texts(fake_api)
        assert worker.poll() is None, "the worker exited when Redis went away"
    finally:
        worker.terminate()
        worker.wait(30)
        redis_server.stop()
        rt.engine.dispose()
