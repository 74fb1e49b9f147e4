"""Jobs for the pipeline tests, run by real `crmbot worker` processes (they import this module by
name). Each writes what it did to the worker's Redis, where the test reads it."""
from __future__ import annotations

import os

from redis import Redis

from workers.jobs import runtime

WAIT = 60  # seconds a job blocks at most for the test's go-ahead: no run hangs forever


def note(name: str) -> str:
    """Append ``name`` to the list ``pipeline:ran``: which jobs ran, in which order."""
    runtime().redis.rpush("pipeline:ran", name)
    return name


def mark_then_wait(name: str) -> int:
    """Record that a run started (the pid of the process running it), wait for the test's
    go-ahead on a key it controls, then have the effect: ``pipeline:<name>:effect`` + 1."""
    rt = runtime()
    rt.redis.rpush(f"pipeline:{name}:runs", os.getpid())
    # A connection of our own: the runtime's has a short socket timeout, for the webhook's sake.
    with Redis.from_url(rt.settings.redis_url, socket_timeout=WAIT + 5) as blocking:
        if blocking.blpop([f"pipeline:{name}:go"], timeout=WAIT) is None:
            raise TimeoutError(f"{name}: no go-ahead within {WAIT} s")
    return int(rt.redis.incr(f"pipeline:{name}:effect"))


def refuse_until_fixed(name: str) -> str:
    """Fails (``ValueError``) until the test sets ``pipeline:<name>:fixed``; then notes ``name``."""
    redis = runtime().redis
    if not redis.exists(f"pipeline:{name}:fixed"):
        raise ValueError(f"{name} is not fixed yet")
    return note(name)


def models_loaded_before_the_job() -> int:
    """How many trained models the work horse has at the start of its job, loading none itself:
    the worker loaded them before it forked."""
    from nlp.model import load_scorer

    return load_scorer.cache_info().currsize
