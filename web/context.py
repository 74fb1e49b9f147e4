"""Where the app keeps its per-process runtime, apart from ``web.app`` so blueprints need not import
the factory that imports them."""
from __future__ import annotations

from flask import Flask

from workers.runtime import Runtime

_KEY = "crmbot"


def attach_runtime(app: Flask, runtime: Runtime) -> None:
    """Make ``runtime`` the one ``runtime_of(app)`` returns."""
    app.extensions[_KEY] = runtime


def runtime_of(app: Flask) -> Runtime:
    """The runtime ``create_app`` attached to ``app``."""
    return app.extensions[_KEY]
