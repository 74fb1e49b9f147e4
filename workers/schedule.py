"""The periodic jobs, all registered here and run by ``crmbot scheduler`` (rq's ``CronScheduler``).

Adding one is one line in ``PERIODIC``::

    Periodic(kpis.refresh_kpis, jobs.REPORTS, every=300, timeout=600),

A periodic job takes no retry: its next tick is its retry, and a tick missed while Redis was down
(nothing could be queued) simply waits for the next one, so it needs no store-side outbox. Every
job here must be idempotent (it may run late, twice, or not at all for one tick).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from rq.cron import CronJob, CronScheduler

from config import Settings
from workers import analysis, jobs, kpis, listening, sla


@dataclass(frozen=True)
class Periodic:
    """``func(*args)`` queued on ``queue`` every ``every`` seconds, or at the times of the crontab
    line ``cron`` (in the scheduler machine's local time zone, as rq reads it); it is stopped
    after ``timeout`` seconds of running."""

    func: Callable[..., Any]
    queue: str
    every: int | None = None
    cron: str | None = None
    args: tuple[Any, ...] = ()
    timeout: int = 300

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"{self.name}: give exactly one of every= and cron=")
        if self.queue not in jobs.QUEUES:
            raise ValueError(f"{self.name}: queue {self.queue!r} is not one of {', '.join(jobs.QUEUES)}")

    @property
    def name(self) -> str:
        """One name per job and arguments: rq keeps each one's history under it."""
        base = f"{self.func.__module__}.{self.func.__name__}"
        return f"{base}:{','.join(map(str, self.args))}" if self.args else base

    def register(self, scheduler: CronScheduler) -> CronJob:
        return scheduler.register(self.func, self.queue, args=self.args, interval=self.every, cron=self.cron,
                                  job_timeout=self.timeout, name=self.name)


PERIODIC: list[Periodic] = [
    # Claims whose lease ran out become UNKNOWN; sends that are due (queued while Redis was
    # down, or whose backoff is over) are queued again.
    Periodic(jobs.drain_outbox, jobs.REALTIME, every=60, timeout=120),
    Periodic(listening.snapshot_wechat_followers, jobs.REPORTS, every=3600, timeout=300),
    # Inbound text messages waiting for their analysis (the store is its queue): every 2 s keeps
    # the lag to a few seconds.
    Periodic(analysis.analyze_messages, jobs.ANALYSIS, every=2, timeout=120),
    # Open tickets' SLA flags: near due, past due.
    Periodic(sla.check_sla, jobs.REPORTS, every=60, timeout=120),
    # The KPI day rollups of today and yesterday.
    Periodic(kpis.refresh_kpis, jobs.REPORTS, every=300, timeout=600),
]


def periodic_jobs(settings: Settings) -> list[Periodic]:
    """``PERIODIC``, and a poll of each listening channel that is set up (Weibo, Twitter) at the
    interval of the listening rules."""
    polls = [Periodic(listening.poll_channel, jobs.POLLING, every=listening.rules().interval_for(channel),
                      args=(channel,), timeout=600)
             for channel in listening.configured_channels(settings)]
    return [*PERIODIC, *polls]


def register_all(scheduler: CronScheduler, settings: Settings) -> list[CronJob]:
    """Register every periodic job with ``scheduler``; what ``crmbot scheduler`` runs."""
    return [periodic.register(scheduler) for periodic in periodic_jobs(settings)]
