"""Liveness and readiness for load balancers and orchestrators."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from web.context import runtime_of

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    """The process can serve: the store and Redis answer. 503 names what does not."""
    rt = runtime_of(current_app)
    checks = {}
    try:
        # Committed, not rolled back: on a rollback psycopg deallocates the connection's prepared
        # statements, and a probe every few seconds would keep the webhook's from sticking.
        with rt.engine.begin() as connection:
            connection.execute(text("SELECT 1"))
        checks["store"] = "ok"
    except SQLAlchemyError as exc:
        checks["store"] = f"error: {exc.__class__.__name__}"
    try:
        rt.redis.ping()
        checks["redis"] = "ok"
    except RedisError as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503
