"""The whole service as a user starts it: ``crmbot run`` on embedded defaults (real gunicorn,
rq worker and scheduler processes, SQLite, the embedded Redis), then ``crmbot chat``, raw retries,
and the embedded Redis killed under traffic."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest
import requests
from redis import Redis
from sqlalchemy import create_engine, text

from channels.wechat_push import WeChatServer, text_xml
from workers.runtime import EmbeddedRedis

pytestmark = pytest.mark.slow
TOKEN, APP_ID = "e2e-token", "wxe2eapp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Path]]:
    var = tmp_path_factory.mktemp("var")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMBOT_")}
    env.update(CRMBOT_VAR_DIR=str(var), CRMBOT_WECHAT_TOKEN=TOKEN, CRMBOT_WECHAT_APP_ID=APP_ID)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "web.cli", "run", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    printed: list[str] = []  # what a person starting it sees, as it comes
    reader = threading.Thread(target=lambda: printed.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except requests.RequestException:  # not listening yet, or busy starting
            pass
        assert process.poll() is None, "".join(printed)
        time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("crmbot run did not become ready in 60 s")
    env["PRINTED"] = "\n".join(printed)  # read by the tests through the env they get
    yield url, env, var
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    reader.join(timeout=10)
    output = "".join(printed)
    assert process.returncode == 0, output[-3000:]
    assert f"crmbot is running at {url}/" in output


def stored_inbound(var: Path) -> tuple[int, int]:
    engine = create_engine(f"sqlite:///{var / 'crmbot.db'}")
    with engine.connect() as connection:
        row = connection.execute(text(
            "SELECT count(*), count(distinct dedupe_key) FROM messages WHERE direction = 'in'")).one()
    engine.dispose()
    return row[0], row[1]


def test_a_fresh_start_prints_a_console_login_that_works(service) -> None:
    import re

    url, env, _ = service
    found = re.search(r"console/login \(first start: user admin, password (\S+) ", env["PRINTED"])
    assert found, env["PRINTED"]
    browser = requests.Session()
    assert browser.get(f"{url}/", timeout=5).url.startswith(f"{url}/console/login")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', browser.get(f"{url}/console/login").text)
    signed_in = browser.post(f"{url}/console/login", timeout=5, data={
        "name": "admin", "password": found.group(1), "csrf_token": token.group(1)})
    assert signed_in.url == f"{url}/console/tickets" and "工单队列" in signed_in.text


def test_chat_talks_through_the_real_webhook(service) -> None:
    url, env, _ = service
    done = subprocess.run([sys.executable, "-m", "web.cli", "chat", "--url", f"{url}/webhooks/wechat"],
                          input="/subscribe\n几点开门\n我昨天买的奶茶有异物\n/quit\n", env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    replies = [line for line in done.stdout.splitlines() if line.startswith("品牌: ")]
    assert "欢迎关注" in replies[0]
    assert any("10:00-22:00" in line for line in replies)
    assert "工单号 T" in replies[2] and "异物" not in replies[2]  # a complaint in the customer's words


def test_concurrent_retries_are_stored_once(service) -> None:
    url, _, var = service
    before = stored_inbound(var)
    server = WeChatServer(TOKEN, APP_ID)
    pushes = [server.push(text_xml("gh_e2e", f"oE2E{n:024d}", f"第{n}条", 900_000 + n)) for n in range(20)]

    def send(push: tuple[str, bytes]) -> int:
        query, body = push
        return requests.post(f"{url}/webhooks/wechat?{query}", data=body, timeout=10).status_code

    # Every message arrives three times at once, as WeChat retries when an answer is slow.
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(send, [p for p in pushes for _ in range(3)]))
    assert statuses == [200] * 60
    after = stored_inbound(var)
    assert (after[0] - before[0], after[1] - before[1]) == (20, 20)


def test_forged_request_is_refused_by_the_real_server(service) -> None:
    url, _, _ = service
    query, body = WeChatServer("forged", APP_ID).push(text_xml("gh_e2e", "oForged", "hi", 1))
    response = requests.post(f"{url}/webhooks/wechat?{query}", data=body, timeout=10)
    assert response.status_code == 403 and "Traceback" not in response.text


def test_embedded_redis_killed_under_traffic_comes_back(service) -> None:
    """kill -9 the embedded Redis while customers write: the webhook answers throughout, and
    within 30 s ``crmbot run`` has it back, /readyz is 200 and card binding sends a code.
    Last in this module: it takes the service's Redis down."""
    url, _, var = service
    socket_path = EmbeddedRedis(var).socket
    with Redis(unix_socket_path=str(socket_path)) as redis:
        killed = redis.info("server")["process_id"]
    server = WeChatServer(TOKEN, APP_ID)
    stop, statuses = threading.Event(), []

    def customers_write() -> None:
        for n in range(3000):  # bounded; stopped once Redis is back
            if stop.is_set():
                return
            query, body = server.push(text_xml("gh_e2e", f"oTraffic{n % 5:019d}", "几点开门", 700_000 + n))
            try:
                statuses.append(requests.post(f"{url}/webhooks/wechat?{query}", data=body, timeout=10).status_code)
            except requests.RequestException as exc:  # kept, for the assertion to show
                statuses.append(repr(exc))

    traffic = threading.Thread(target=customers_write)
    traffic.start()
    try:
        while len(statuses) < 5:  # traffic is flowing before the kill
            assert traffic.is_alive()
            time.sleep(0.05)
        os.kill(killed, signal.SIGKILL)
        deadline, ready = time.monotonic() + 30, False
        while time.monotonic() < deadline and not ready:
            time.sleep(0.2)
            ready = requests.get(f"{url}/readyz", timeout=5).status_code == 200
        assert ready, "/readyz did not come back within 30 s"
    finally:
        stop.set()
        traffic.join(30)
    assert statuses and set(statuses) == {200}
    with Redis(unix_socket_path=str(socket_path)) as redis:
        assert redis.info("server")["process_id"] != killed

    def says(text: str, n: int) -> str:
        query, body = server.push(text_xml("gh_e2e", "oBindsAfterKill0000000001", text, n))
        return server.read_reply(requests.post(f"{url}/webhooks/wechat?{query}", data=body, timeout=10).content)[
            "Content"]

    assert "手机号" in says("绑卡", 710_001)
    assert "验证码已发送" in says("13812345678", 710_002)
