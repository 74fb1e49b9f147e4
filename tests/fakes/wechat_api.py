"""A local, stdlib-only fake of the WeChat Official Account server API.

Only the endpoints the chatbot needs are served:

* ``GET  /cgi-bin/token``                (access token, grant_type=client_credential)
* ``POST /cgi-bin/message/custom/send``  (客服消息 / customer-service message)

Responses use the real API's JSON shapes and error codes, so a client such as
``wechatpy.WeChatClient`` pointed at :attr:`FakeWeChatAPI.base_url` can be
exercised end to end without network access.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN_PATH = "/cgi-bin/token"
CUSTOM_SEND_PATH = "/cgi-bin/message/custom/send"


class FakeWeChatAPI:
    """Fake ``https://api.weixin.qq.com/cgi-bin/`` served on 127.0.0.1:<random port>."""

    def __init__(self, app_id: str = "wxtestappid", app_secret: str = "testsecret") -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.token_fetches: int = 0
        self.sent: list[dict] = []
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._valid_tokens: set[str] = set()
        self._expired_tokens: set[str] = set()
        self._token_counter = 0
        self._send_failures: deque[tuple[int, str]] = deque()
        self.send_delay = 0.0  # seconds custom/send takes to answer
        self.drop_sends = 0  # how many custom/send requests to take, then hang up without an answer
        self.send_started = threading.Event()  # set when a custom/send request arrives
        self.in_flight = 0  # custom/send requests being answered now
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FakeWeChatAPI":
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FakeWeChatAPI",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = None
        self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "FakeWeChatAPI":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeWeChatAPI is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/cgi-bin/"

    # ------------------------------------------------------------------ scripting
    def expire_tokens(self) -> None:
        """Mark every token issued so far as expired (next send answers 42001)."""
        with self._lock:
            self._expired_tokens |= self._valid_tokens
            self._valid_tokens.clear()

    def fail_next_send(self, errcode: int, errmsg: str = "", times: int = 1) -> None:
        """Queue ``times`` scripted error answers for custom/send (valid token required)."""
        with self._lock:
            for _ in range(times):
                self._send_failures.append((int(errcode), errmsg))

    # ------------------------------------------------------------------ handlers
    def _slow_send(self, path: str) -> bool:
        """Wait out ``send_delay`` on a custom/send (no lock held); True to take the message and then
        hang up without an answer."""
        if path != CUSTOM_SEND_PATH:
            return False
        self.send_started.set()
        with self._lock:
            self.in_flight += 1
        try:
            time.sleep(self.send_delay)  # the platform's own slowness, not a test's wait
        finally:
            with self._lock:
                self.in_flight -= 1
        with self._lock:
            if self.drop_sends > 0:
                self.drop_sends -= 1
                return True
        return False

    def _handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, dict]:
        parts = urlsplit(raw_path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self.calls.append((method, path))
            if path == TOKEN_PATH and method == "GET":
                return 200, self._token(query)
            if path == CUSTOM_SEND_PATH and method == "POST":
                return 200, self._custom_send(query, body)
        return 404, {"errcode": -1, "errmsg": "not found"}

    def _token(self, query: dict[str, str]) -> dict:
        # lock held by caller
        if query.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        if query.get("appid") != self.app_id:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if query.get("secret") != self.app_secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        self._token_counter += 1
        token = f"FAKE_TOKEN_{self._token_counter}"
        self._valid_tokens.add(token)
        self.token_fetches += 1
        return {"access_token": token, "expires_in": 7200}

    def _custom_send(self, query: dict[str, str], body: bytes) -> dict:
        # lock held by caller
        token = query.get("access_token", "")
        if not token:
            return {"errcode": 41001, "errmsg": "access_token missing"}
        if token in self._expired_tokens:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        if token not in self._valid_tokens:
            return {
                "errcode": 40001,
                "errmsg": "invalid credential, access_token is invalid or not latest",
            }
        if self._send_failures:
            errcode, errmsg = self._send_failures.popleft()
            return {"errcode": errcode, "errmsg": errmsg}
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return {"errcode": 47001, "errmsg": "data format error"}
        if not isinstance(data, dict):
            return {"errcode": 47001, "errmsg": "data format error"}
        if not data.get("touser"):
            return {"errcode": 40003, "errmsg": "invalid openid"}
        if not data.get("msgtype"):
            return {"errcode": 44002, "errmsg": "empty post data"}
        self.sent.append(data)
        return {"errcode": 0, "errmsg": "ok"}


def _make_handler(fake: FakeWeChatAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _dispatch(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            hang_up = method == "POST" and fake._slow_send(urlsplit(self.path).path)
            status, payload = fake._handle(method, self.path, body)
            if hang_up:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            out = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; encoding=utf-8")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._dispatch("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch("DELETE")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
