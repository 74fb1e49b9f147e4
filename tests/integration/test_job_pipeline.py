"""The rq pipeline with real Redis and real `crmbot worker` processes: queues by purpose, the
periodic jobs, a worker killed with kill -9 mid-job, Redis restarted with jobs queued, jobs run
twice or for a deleted row, and failed jobs listed and retried by an admin (API and console)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from redis import Redis
from rq import Queue, Retry
from rq.cron import CronScheduler
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from sqlalchemy import delete, select

from channels.wechat_push import WeChatServer
from config import Settings
from crm_store import models, staff
from crm_store.models import AuditEntry, Message
from tests.conftest import APP_ID, TOKEN, fixture_xml, make_settings
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.integration import pipeline_jobs
from tests.integration.test_console import csrf_of, sign_in
from web.app import create_app
from workers import jobs, listening, schedule
from workers.runtime import EmbeddedRedis, Runtime

SECRET = "testsecret"
OPENID = "oUser0000000000000000000001"  # the sender of fixture_xml("text")
PASSWORD = "a-long-enough-password"

pytestmark = pytest.mark.slow


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, "CRMBOT_DATABASE_URL": settings.database_url, "CRMBOT_REDIS_URL": settings.redis_url or "",
            "CRMBOT_VAR_DIR": str(settings.var_dir), "CRMBOT_WECHAT_TOKEN": settings.wechat_token,
            "CRMBOT_WECHAT_APP_ID": settings.wechat_app_id, "CRMBOT_WECHAT_APP_SECRET": settings.wechat_app_secret or "",
            "CRMBOT_WECHAT_API_BASE": settings.wechat_api_base, "CRMBOT_SECRET_KEY": settings.secret_key, **extra}


def run_worker(settings: Settings, *options: str) -> str:
    """`crmbot worker --burst [options]` to the end; its log."""
    done = subprocess.run([sys.executable, "-m", "web.cli", "worker", "--burst", *options], env=worker_env(settings),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def until(condition, seconds: float = 60) -> bool:  # type: ignore[no-untyped-def]
    """Poll a state the test waits for, at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def ran(redis: Redis) -> list[str]:
    return [name.decode() for name in redis.lrange("pipeline:ran", 0, -1)]


@pytest.fixture()
def fake_api() -> Iterator[FakeWeChatAPI]:
    with FakeWeChatAPI(APP_ID, SECRET) as fake:
        yield fake


@pytest.fixture()
def pipeline(tmp_path, database_url, redis_url, redis, fake_api) -> Iterator[Runtime]:
    """A runtime on the test Redis with a WeChat customer (made by a real inbound message), its
    sends going to the fake WeChat API; ``jobs.RUNTIME`` set, as in a worker."""
    rt = Runtime.build(make_settings(tmp_path, database_url, redis_url, wechat_api_base=fake_api.base_url,
                                     wechat_app_secret=SECRET))
    _customer_writes(rt)
    jobs.RUNTIME = rt
    yield rt
    jobs.RUNTIME = None
    rt.engine.dispose()


def _customer_writes(rt: Runtime) -> None:
    query, body = WeChatServer(TOKEN, APP_ID).push(fixture_xml("text"))
    assert create_app(rt.settings, rt).test_client().post(f"/webhooks/wechat?{query}", data=body).status_code == 200


def conversation_id(rt: Runtime) -> int:
    with rt.uow() as uow:
        return uow.conversations.open_for(uow.identities.find("wechat", "gh_brand0001", OPENID).id).id


def delivery(rt: Runtime, message_id: int) -> str:
    with rt.uow() as uow:
        return uow.messages.get(message_id).delivery


# ------------------------------------------------------------------------------- queues
def test_a_send_lands_on_realtime_with_its_retry_and_timeout(pipeline) -> None:
    message_id = jobs.queue_reply(pipeline, conversation_id(pipeline), "您好")
    queued = {name: Queue(name, connection=pipeline.redis).jobs for name in jobs.QUEUES}
    assert [len(queued[name]) for name in jobs.QUEUES] == [1, 0, 0, 0]
    job = queued[jobs.REALTIME][0]
    assert (job.func_name, job.args) == ("workers.jobs.send_outbound", (message_id,))
    assert (job.timeout, job.retries_left, job.retry_intervals) == (60, 3, [5, 30, 120])
    assert Queue("default", connection=pipeline.redis).count == 0


def test_periodic_jobs_are_registered_in_one_place_on_their_queues(tmp_path, database_url, redis_url, redis) -> None:
    settings = make_settings(tmp_path, database_url, redis_url, weibo_access_token="wb-token", weibo_uid="1234")
    cron = CronScheduler(connection=redis)
    registered = schedule.register_all(cron, settings)
    assert len(registered) == len(schedule.PERIODIC) + 1  # and one poll: only Weibo is set up
    cron.enqueue_jobs()  # what `crmbot scheduler` does at its first tick: every interval job is due
    landed = {name: [(j.func_name, j.args, j.timeout) for j in Queue(name, connection=redis).jobs]
              for name in jobs.QUEUES}
    assert landed == {
        jobs.REALTIME: [("workers.jobs.drain_outbox", (), 120)],
        jobs.ANALYSIS: [("workers.analysis.analyze_messages", (), 120)],
        jobs.POLLING: [("workers.listening.poll_channel", ("weibo",), 600)],
        jobs.REPORTS: [("workers.listening.snapshot_wechat_followers", (), 300), ("workers.sla.check_sla", (), 120),
                       ("workers.kpis.refresh_kpis", (), 600)]}
    poll = next(job for job in registered if job.queue_name == jobs.POLLING)
    assert poll.interval == listening.rules().interval_for("weibo")
    with pytest.raises(ValueError, match="queue 'default'"):
        schedule.Periodic(jobs.drain_outbox, "default", every=60)


def test_workers_take_their_queues_realtime_first(pipeline) -> None:
    for name in reversed(jobs.QUEUES):  # queued last, realtime must still run first
        Queue(name, connection=pipeline.redis).enqueue(pipeline_jobs.note, name)
    run_worker(pipeline.settings, "--queues", "realtime,analysis")
    assert ran(pipeline.redis) == ["realtime", "analysis"]
    assert [Queue(name, connection=pipeline.redis).count for name in jobs.QUEUES] == [0, 0, 1, 1]
    run_worker(pipeline.settings)  # the default: all four
    assert ran(pipeline.redis) == ["realtime", "analysis", "polling", "reports"]


def test_the_worker_loads_the_models_before_it_forks_a_job(pipeline) -> None:
    job = Queue(jobs.ANALYSIS, connection=pipeline.redis).enqueue(pipeline_jobs.models_loaded_before_the_job)
    run_worker(pipeline.settings, "--queues", "analysis")
    assert job.return_value() == 2  # zh and en, inherited from the worker process


def test_an_unknown_queue_is_refused_with_the_known_ones(pipeline) -> None:
    done = subprocess.run([sys.executable, "-m", "web.cli", "worker", "--burst", "--queues", "realtime,default"],
                          env=worker_env(pipeline.settings), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "default: the queues are realtime,analysis,polling,reports" in done.stderr


# ----------------------------------------------------------------------- bad input
def test_a_worker_killed_mid_job_has_its_job_retried_by_the_next_and_the_effect_once(pipeline) -> None:
    redis = pipeline.redis
    job = Queue(jobs.ANALYSIS, connection=redis).enqueue(pipeline_jobs.mark_then_wait, "k9", retry=Retry(max=2),
                                                        job_timeout=120)
    first = subprocess.Popen([sys.executable, "-m", "web.cli", "worker"], env=worker_env(pipeline.settings),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert until(lambda: redis.llen("pipeline:k9:runs") == 1), "the first worker never started the job"
    finally:
        killed = kill_9(first)
    horse = int(redis.lindex("pipeline:k9:runs", 0))
    assert horse in killed
    assert job.get_status() == JobStatus.STARTED and redis.get("pipeline:k9:effect") is None
    started = StartedJobRegistry(jobs.ANALYSIS, connection=redis)
    assert job.id in started.get_job_ids(cleanup=False)
    # Time passes: the dead worker's heartbeat lease on the job runs out (rq gives it 60+ s).
    redis.zadd(started.key, {entry: time.time() - 1 for entry in redis.zrange(started.key, 0, -1)})
    redis.rpush("pipeline:k9:go", "go")
    run_worker(pipeline.settings)  # its maintenance finds the job abandoned and retries it
    runs = [int(pid) for pid in redis.lrange("pipeline:k9:runs", 0, -1)]
    assert len(runs) == 2 and runs[1] != horse
    assert redis.get("pipeline:k9:effect") == b"1"
    assert job.get_status() == JobStatus.FINISHED and FailedJobRegistry(jobs.ANALYSIS, connection=redis).count == 0


def kill_9(worker: subprocess.Popen[bytes]) -> set[int]:
    """kill -9 a `crmbot worker` and every process it forked (its scheduler, its work horse, which
    rq puts in a process group of its own), the worker first; the pids of those children."""
    children = {int(pid) for pid in Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()}
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(30)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert until(lambda: not any(_alive(pid) for pid in children), 10), "a child outlived the kill"
    return children


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by its dead parent's reaper) is not alive either.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_killed_mid_send_never_sends_twice(pipeline, fake_api) -> None:
    """kill -9 while WeChat holds the request: a later run of the send (rq's retry of the abandoned
    job, or any other) finds the message claimed and skips it; once the claim's lease runs out the
    message is UNKNOWN for an agent, never sent again by itself."""
    fake_api.send_delay = 30.0
    message_id = jobs.queue_reply(pipeline, conversation_id(pipeline), "只发一次")
    first = subprocess.Popen([sys.executable, "-m", "web.cli", "worker"], env=worker_env(pipeline.settings),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert fake_api.send_started.wait(60), "the worker never called the WeChat API"
    finally:
        kill_9(first)
    fake_api.send_delay = 0.0
    assert delivery(pipeline, message_id) == models.SENDING
    again = Queue(jobs.REALTIME, connection=pipeline.redis).enqueue(jobs.send_outbound, message_id)
    run_worker(pipeline.settings)
    assert again.return_value() == "skipped" and delivery(pipeline, message_id) == models.SENDING
    with pipeline.uow() as uow:  # time passes: the dead worker's claim runs out
        uow.messages.get(message_id).lease_expires_at = models.utcnow()
        uow.commit()
    assert jobs.drain_outbox() == 0 and delivery(pipeline, message_id) == models.UNKNOWN
    assert len(fake_api.sent) <= 1  # the killed try may or may not have reached WeChat: at most once


def test_jobs_queued_before_a_redis_restart_run_after_it(tmp_path, database_url, fake_api) -> None:
    """The embedded Redis keeps its data in an append-only file: sends queued, Redis stopped and
    started again at the same address, then a worker sends them all."""
    server = EmbeddedRedis(tmp_path / "redis-var").start()
    rt = Runtime.build(make_settings(tmp_path, database_url, server.url, wechat_api_base=fake_api.base_url,
                                     wechat_app_secret=SECRET))
    try:
        _customer_writes(rt)
        texts = ["重启前排队一", "重启前排队二"]
        ids = [jobs.queue_reply(rt, conversation_id(rt), text) for text in texts]
        assert Queue(jobs.REALTIME, connection=rt.redis).count == 2
        server.stop()
        assert not server.answers()
        server.start()
        assert Queue(jobs.REALTIME, connection=rt.redis).count == 2
        run_worker(rt.settings)
        assert sorted(m["text"]["content"] for m in fake_api.sent) == sorted(texts)
        assert [delivery(rt, message_id) for message_id in ids] == [models.SENT, models.SENT]
    finally:
        server.stop()
        rt.engine.dispose()


def test_a_send_queued_twice_is_sent_once(pipeline, fake_api) -> None:
    message_id = jobs.queue_reply(pipeline, conversation_id(pipeline), "两个任务，一条消息")
    jobs.enqueue_send(pipeline.redis, message_id)
    queued = Queue(jobs.REALTIME, connection=pipeline.redis).jobs
    assert len(queued) == 2
    run_worker(pipeline.settings)
    assert sorted(job.return_value() for job in queued) == ["sent", "skipped"]
    assert [m["text"]["content"] for m in fake_api.sent] == ["两个任务，一条消息"]


def test_a_send_whose_message_was_deleted_ends_quietly(pipeline, fake_api) -> None:
    message_id = jobs.queue_reply(pipeline, conversation_id(pipeline), "删掉了")
    with pipeline.uow() as uow:
        uow.session.execute(delete(Message).where(Message.id == message_id))
        uow.commit()
    job = Queue(jobs.REALTIME, connection=pipeline.redis).jobs[0]
    run_worker(pipeline.settings)
    assert job.get_status() == JobStatus.FINISHED and job.return_value() == "skipped"
    assert job.retries_left == 3  # never retried: nothing failed
    assert FailedJobRegistry(jobs.REALTIME, connection=pipeline.redis).count == 0 and fake_api.sent == []


# ------------------------------------------------------------------- failed jobs, by an admin
@pytest.fixture()
def failed_job(pipeline) -> Job:
    """A job that failed for good on the analysis queue, run by a real worker."""
    job = Queue(jobs.ANALYSIS, connection=pipeline.redis).enqueue(pipeline_jobs.refuse_until_fixed, "broken")
    run_worker(pipeline.settings)
    assert job.get_status() == JobStatus.FAILED
    return job


@pytest.fixture()
def staff_tokens(pipeline) -> dict[str, str]:
    with pipeline.uow() as uow:
        made = {}
        for name, role in (("root", "admin"), ("alice", "agent")):
            staff.create_user(name, role, PASSWORD, uow)
            made[name] = staff.create_token(name, uow)
        uow.commit()
    return made


def _audited_retries(rt: Runtime) -> list[tuple[str, str | None, dict]]:
    with rt.uow() as uow:
        return [(e.actor, e.target_id, e.detail) for e in uow.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "job.retry"))]


def test_failed_jobs_api_lists_and_retries_for_admins_only(pipeline, failed_job, staff_tokens) -> None:
    client = create_app(pipeline.settings, pipeline).test_client()
    admin, agent = ({"Authorization": f"Bearer {staff_tokens[name]}"} for name in ("root", "alice"))
    listed = client.get("/api/v1/jobs/failed", headers=admin)
    assert listed.status_code == 200 and listed.json["next"] is None
    [item] = listed.json["items"]
    assert item["id"] == failed_job.id and item["queue"] == jobs.ANALYSIS and item["args"] == ["broken"]
    assert item["function"] == "tests.integration.pipeline_jobs.refuse_until_fixed"
    assert item["error"] == "ValueError: broken is not fixed yet" and item["failed_at"]
    assert client.get("/api/v1/jobs/failed", headers=agent).status_code == 403
    assert client.get("/api/v1/jobs/failed").status_code == 401
    assert client.post(f"/api/v1/jobs/{failed_job.id}/retry", headers=agent).status_code == 403
    unknown = client.post("/api/v1/jobs/no-such-job/retry", headers=admin)
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "not_found"
    pipeline.redis.set("pipeline:broken:fixed", 1)
    retried = client.post(f"/api/v1/jobs/{failed_job.id}/retry", headers=admin)
    assert retried.status_code == 200 and retried.json["id"] == failed_job.id
    assert Queue(jobs.ANALYSIS, connection=pipeline.redis).job_ids == [failed_job.id]
    assert client.post(f"/api/v1/jobs/{failed_job.id}/retry", headers=admin).status_code == 404  # queued now
    run_worker(pipeline.settings)
    assert ran(pipeline.redis) == ["broken"] and client.get("/api/v1/jobs/failed", headers=admin).json["items"] == []
    assert _audited_retries(pipeline) == [("root", failed_job.id, {"function": item["function"],
                                                                    "queue": jobs.ANALYSIS})]


def test_failed_jobs_page_lists_per_queue_and_retries_with_csrf(pipeline, failed_job, staff_tokens) -> None:
    app = create_app(pipeline.settings, pipeline)
    agent = app.test_client()
    assert sign_in(agent, "alice").status_code == 302
    assert agent.get("/console/admin/jobs").status_code == 403
    client = app.test_client()
    assert sign_in(client, "root").status_code == 302
    page = client.get("/console/admin/jobs")
    assert page.status_code == 200
    section = page.text.split('data-queue="analysis"')[1].split("</section>")[0]
    assert failed_job.id in section and "ValueError: broken is not fixed yet" in section
    assert 'href="/console/admin/jobs"' in page.text  # in the admin's navigation
    retry = f"/console/admin/jobs/{failed_job.id}/retry"
    assert client.post(retry).status_code == 400  # no CSRF token
    assert FailedJobRegistry(jobs.ANALYSIS, connection=pipeline.redis).get_job_ids() == [failed_job.id]
    done = client.post(retry, data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 302 and done.headers["Location"].endswith("/console/admin/jobs")
    assert Queue(jobs.ANALYSIS, connection=pipeline.redis).job_ids == [failed_job.id]
    assert client.post("/console/admin/jobs/no-such-job/retry",
                       data={"csrf_token": csrf_of(page.text)}).status_code == 404
    assert [(actor, target) for actor, target, _ in _audited_retries(pipeline)] == [("root", failed_job.id)]
    assert failed_job.id not in client.get("/console/admin/jobs").text
