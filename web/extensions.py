"""The Flask extensions of the staff console and the web chat, created once and bound to the app
by ``init_extensions`` (the ``init_app`` pattern, STYLE.md).

- Flask-WTF's ``CSRFProtect``: every POST carries a CSRF token (a form field or the ``X-CSRFToken``
  header), except the platform webhooks (signed by the platform) and the bearer-token API.
- Flask-Login: the console's session login.
- Flask-Limiter: login attempts and web chat messages, counted in Redis so that every web process
  shares one count.
- Flask-Babel: Chinese by default, English on request.
"""
from __future__ import annotations

from flask import Flask, request, session
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from config import Settings

LANGUAGES = ("zh", "en")

csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
babel = Babel()


def console_language() -> str:
    """The staff member's chosen language, else the browser's preference, else Chinese."""
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default="zh") if request else "zh"


def _limiter_storage(redis_url: str) -> str:
    # The limits library names a unix socket "redis+unix://"; redis-py names it "unix://".
    return "redis+unix://" + redis_url.removeprefix("unix://") if redis_url.startswith("unix://") else redis_url


def init_extensions(app: Flask, settings: Settings) -> None:
    app.config.update(
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as the session: a long shift is one session
        RATELIMIT_STORAGE_URI=_limiter_storage(settings.redis_url or "memory://"),
        RATELIMIT_STORAGE_OPTIONS={"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
        # Redis gone: count in this process rather than refuse every login.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_HEADERS_ENABLED=True,
        BABEL_DEFAULT_LOCALE="zh",
        BABEL_TRANSLATION_DIRECTORIES="translations",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    csrf.init_app(app)
    login_manager.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=console_language)
