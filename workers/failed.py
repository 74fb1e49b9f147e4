"""Failed jobs, for an admin to see and retry (the console's Jobs page and ``/api/v1/jobs``).

A job lands in rq's ``FailedJobRegistry`` of its queue when it raised with no retries left, ran
past its timeout, or its worker died under it (rq's abandoned-job handling). Every job of the
service is idempotent, so retrying one by hand is safe.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis import Redis
from rq.exceptions import DeserializationError, InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from workers.jobs import QUEUES


@dataclass(frozen=True)
class FailedJob:
    """What an admin needs to judge a failed job: what ran, on which queue, when, and why."""

    id: str
    function: str
    args: list[Any]
    queue: str
    failed_at: datetime | None
    error: str  # the last line of the exception, e.g. "OperationalError: database is locked"


def failed_jobs(redis: Redis, offset: int = 0, limit: int = 50) -> list[FailedJob]:
    """Failed jobs queue by queue (in the workers' order), newest first within a queue; ``limit``
    of them from ``offset``. A job whose data expired meanwhile is left out."""
    found: list[FailedJob] = []
    for queue in QUEUES:
        registry = FailedJobRegistry(queue, connection=redis)
        count = registry.get_job_count(cleanup=False)
        if offset >= count:
            offset -= count
            continue
        ids = registry.get_job_ids(offset, offset + limit - len(found) - 1, desc=True, cleanup=False)
        offset = 0
        found += [_failed(job) for job in Job.fetch_many(ids, connection=redis) if job is not None]
        if len(found) >= limit:
            break
    return found


def retry(redis: Redis, job_id: str) -> FailedJob:
    """Queue a failed job again, on its own queue; ``LookupError`` when no failed job has that id."""
    try:
        job = Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        raise LookupError(f"no failed job {job_id}") from None
    if job.origin not in QUEUES:
        raise LookupError(f"no failed job {job_id}")
    summary = _failed(job)
    try:
        FailedJobRegistry(job.origin, connection=redis).requeue(job)
    except InvalidJobOperation:  # not in the registry: it is queued, running or done
        raise LookupError(f"no failed job {job_id}") from None
    return summary


def _failed(job: Job) -> FailedJob:
    result = job.latest_result()
    text = (result.exc_string if result is not None and result.exc_string else "").strip()
    try:
        function = job.func_name or "?"
        args = [a if isinstance(a, (str, int, float, bool, type(None))) else repr(a) for a in job.args]
    except DeserializationError:  # written by another version of the code: still listed, retryable
        function, args = "?", []
    return FailedJob(job.id, function, args, job.origin,
                     result.created_at if result is not None else job.ended_at,
                     text.splitlines()[-1] if text else "")
