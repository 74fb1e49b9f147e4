"""What every fake platform server built on Flask shares: serving its app on 127.0.0.1 at a
random port in a thread of the test process, for real HTTP from the real clients."""
from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # the tests read what the fake recorded
        pass


class FakeFlaskServer:
    """A fake platform's lifecycle: ``start``/``stop`` or ``with``; ``base_url`` once started.
    A subclass builds its app (``make_app``) and names its API's path (``api_path``)."""

    api_path = "/"

    def __init__(self) -> None:
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def make_app(self) -> Flask:
        raise NotImplementedError

    def start(self) -> Any:
        if self._server is not None:
            return self
        self._server = make_server("127.0.0.1", 0, self.make_app(), threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._server.server_port}{self.api_path}"
