"""The KPI rollup job: keeps the day rollups (``crm_store.kpis``) of today and yesterday up to
date, so that a dashboard reads them instead of the messages.

Yesterday too: a message of yesterday may still be answered within its SLA today, and that
answer belongs to yesterday. After that, ``crm_store.kpis.stale_days`` knows a day cannot change.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from crm_store import kpis
from crm_store.models import utcnow

log = logging.getLogger(__name__)


def refresh_kpis() -> list[str]:
    """rq job (every few minutes, see ``workers.schedule``): refresh the stale rollups of today
    and yesterday in the brand's time zone; returns the days refreshed. Idempotent: two runs at
    once write the same rows (the day's rows are replaced in one transaction)."""
    from workers.jobs import runtime

    rt = runtime()
    rt.after_fork()
    zone = rt.settings.timezone
    today = kpis.brand_day(utcnow(), zone)
    period = kpis.Period(today - timedelta(days=1), today, zone)
    with rt.uow() as uow:
        days = kpis.refresh_stale(uow, period, kpis.first_response_minutes(rt.content.rules))
        uow.commit()
    if days:
        log.info("KPI rollups refreshed: %s", ", ".join(map(str, days)))
    return [day.isoformat() for day in days]
