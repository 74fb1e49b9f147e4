"""The service's Prometheus metrics (``GET /metrics``), through prometheus-client.

It sits in ``workers`` because that is the lowest layer that records them: rq jobs (sends, the
analysis job) and the web both import it, and ``workers`` may not import ``web``.

Metrics (labels in brackets):
- ``crmbot_webhook_seconds`` histogram [channel]: time to answer a platform's push, signature
  checks and refusals included.
- ``crmbot_messages_total`` counter [channel, direction]: ``in`` = customer messages answered by a
  webhook or the web chat; ``out`` = passive replies given there, and sends the platform accepted.
- ``crmbot_outbound_errors_total`` counter [channel, code]: failed sends, by the platform's error
  code (``45015``) or, where it gave none, the state the message was left in (``unreachable``,
  ``quota_exceeded``, ``unknown``, ``failed``).
- ``crmbot_job_failures_total`` counter [queue, function]: rq jobs that raised (each try counts).
- ``crmbot_analysis_lag_seconds`` histogram: from a message stored to its analysis stored
  (``observe_analysis_lag``).
- ``crmbot_queue_depth`` and ``crmbot_queue_lag_seconds`` gauges [queue], and ``crmbot_redis_up``:
  read from Redis when scraped (``QueueCollector``). With Redis down the two queue gauges are
  absent and ``crmbot_redis_up`` is 0; the scrape still answers.

Multiprocess mode: ``crmbot serve`` and ``crmbot worker`` give each process's counters a file under
``var/metrics/<service>/`` (prometheus-client's ``PROMETHEUS_MULTIPROC_DIR``), set before
prometheus_client is first imported, which is when it picks its mode. A scrape sums the files of
every service on that var folder, so whichever web process answers, the figures are the same.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

log = logging.getLogger(__name__)

WEBHOOK_SECONDS = Histogram(
    "crmbot_webhook_seconds", "Time to answer a platform's webhook push.", ["channel"],
    # Around the hot path's goal (p99 under 100 ms) and WeChat's 5 s limit.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
MESSAGES = Counter("crmbot_messages", "Messages in from customers and out to them.", ["channel", "direction"])
OUTBOUND_ERRORS = Counter("crmbot_outbound_errors", "Sends that failed, by the platform's error code or the state.",
                          ["channel", "code"])
JOB_FAILURES = Counter("crmbot_job_failures", "rq jobs that raised, each try.", ["queue", "function"])
ANALYSIS_LAG = Histogram(
    "crmbot_analysis_lag_seconds", "From a message stored to its analysis stored.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0))


def observe_analysis_lag(seconds: float) -> None:
    """Record one analysis's lag: the seconds from its message (or mention) being stored to its
    analysis being stored. Call it once per analysis stored, from the analysis job."""
    ANALYSIS_LAG.observe(max(seconds, 0.0))


def count_job_failure(job: Any, exc_type: type[BaseException] | None, exc_value: BaseException | None,
                      traceback: Any) -> None:
    """An rq exception handler (``Worker(exception_handlers=[...])``): counts the failure and lets
    rq's other handlers run (returns None)."""
    try:
        function = job.func_name
    except Exception:  # a job rq cannot deserialize has no readable name; still a failure
        function = "<unreadable>"
    JOB_FAILURES.labels(queue=job.origin or "", function=function).inc()


class QueueCollector:
    """Each rq queue's depth (jobs waiting) and lag (age of the oldest waiting job; 0 when none),
    read from Redis at scrape time, so every web process reports the same. Scheduled jobs and
    retries waiting out their backoff are not waiting yet and are not counted."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("crmbot_queue_depth", "Jobs waiting in the rq queue.", labels=["queue"])
        lag = GaugeMetricFamily("crmbot_queue_lag_seconds", "Age of the oldest job waiting in the rq queue.",
                                labels=["queue"])
        now = datetime.now(timezone.utc)
        try:
            for queue in sorted(Queue.all(connection=self.redis), key=lambda q: q.name):
                depth.add_metric([queue.name], queue.count)
                lag.add_metric([queue.name], self._age_of_oldest(queue, now))
        except RedisError as exc:
            # The scrape still answers: the gauges are left out (not guessed) and redis_up says why.
            log.warning("metrics: queue figures unavailable, Redis: %s", exc.__class__.__name__)
            yield GaugeMetricFamily("crmbot_redis_up", "Whether Redis answered this scrape.", value=0)
            return
        yield depth
        yield lag
        yield GaugeMetricFamily("crmbot_redis_up", "Whether Redis answered this scrape.", value=1)

    @staticmethod
    def _age_of_oldest(queue: Queue, now: datetime) -> float:
        # The head of the list is the next to run; a few more in case it expired between the reads.
        for job_id in queue.get_job_ids(0, 10):
            job = queue.fetch_job(job_id)
            if job is not None and job.enqueued_at is not None:
                enqueued = job.enqueued_at if job.enqueued_at.tzinfo else job.enqueued_at.replace(tzinfo=timezone.utc)
                return max((now - enqueued).total_seconds(), 0.0)
        return 0.0


def in_files() -> bool:
    """Whether this process keeps its metrics in multiprocess files (prometheus-client chose that
    when first imported, from ``PROMETHEUS_MULTIPROC_DIR``)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class _ServiceFiles:
    """The multiprocess files of every service under ``root`` (``web/``, ``worker/``), merged: one
    family per metric, as if one process had counted everything."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def collect(self) -> Any:
        return multiprocess.MultiProcessCollector.merge([str(path) for path in self.root.glob("*/*.db")])


def exposition(metrics_root: Path, redis: Redis, accept: str | None) -> tuple[bytes, str]:
    """The body and content type of one scrape: the counted metrics (every process's files in
    multiprocess mode, this process's registry otherwise) and the queue gauges, in the text format
    the scraper's ``Accept`` header asks for."""
    registry = CollectorRegistry()
    # A fresh registry per scrape: the files are re-read each time, and the queue collector is
    # bound to this app's Redis rather than registered globally.
    registry.register(_ServiceFiles(metrics_root) if in_files() else REGISTRY)  # type: ignore[arg-type]
    registry.register(QueueCollector(redis))  # type: ignore[arg-type]
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def mark_process_dead(pid: int, folder: Path) -> None:
    """Gunicorn's ``child_exit``: drop a dead web process's live-gauge files (none yet; kept so a
    ``livesum`` gauge added later is right)."""
    multiprocess.mark_process_dead(pid, str(folder))
