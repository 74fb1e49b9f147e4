"""The Flask application factory."""
from __future__ import annotations

import logging

from flask import Flask, Request, jsonify, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from config import Settings
from web.context import attach_runtime, runtime_of
from workers.runtime import Runtime

log = logging.getLogger(__name__)


class Sessions(SecureCookieSessionInterface):
    """Signed-cookie sessions, except on platform webhooks: a platform's push carries no cookie,
    and building the cookie signer costs each push about as much as a store read."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.path.startswith("/webhooks/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def create_app(settings: Settings, runtime: Runtime | None = None) -> Flask:
    """Build the app for ``settings``; ``runtime`` may be shared (tests, one-process runs)."""
    app = Flask(__name__)
    app.session_interface = Sessions()
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=settings.max_body_bytes)
    attach_runtime(app, runtime or Runtime.build(settings))
    runtime_of(app).router  # the models and the FAQ index load now, not on a customer's message

    from web import api, chat, health, metrics, webhooks
    from web.console import error_page, init_console
    from web.extensions import csrf, init_extensions

    init_extensions(app, settings)
    hooks = webhooks.blueprint(settings)
    app.register_blueprint(hooks)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(chat.bp)
    api.init_api(app)
    init_console(app)
    # Signed by the platform or carrying a bearer token: no browser session to forge requests with.
    csrf.exempt(hooks)
    csrf.exempt(api.blp)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if request.path.startswith("/api/"):
            return api.error_response(exc)
        if request.path.startswith("/console"):  # a page for a person, in the console's frame
            return error_page(exc.code or 500, exc.name, exc.description or "")
        return jsonify(error=exc.name, detail=exc.description), exc.code

    @app.errorhandler(OperationalError)
    def store_unavailable(exc: OperationalError):  # type: ignore[no-untyped-def]
        # The store is down, unreachable or locked for too long: nothing was stored, try again.
        log.error("store unavailable: %s", str(exc.orig).strip() or exc.__class__.__name__)
        body, status = http_error(ServiceUnavailable("the store is unavailable; try again"))
        return body, status, {"Retry-After": "5"}

    @app.errorhandler(Exception)
    def server_error(exc: Exception):  # type: ignore[no-untyped-def]
        # Logged with its stack trace here; the client only learns that it failed.
        log.exception("unhandled error")
        return http_error(InternalServerError("the request failed; it has been logged"))

    return app
