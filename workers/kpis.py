"""The KPI rollup job: keeps the day rollups (``crm_store.kpis``) up to date, so that a
dashboard reads them instead of the messages and tickets: the message rollups of today and
yesterday, the ticket rollups of the last ``TICKET_DAYS`` days.

Yesterday too: a message of yesterday may still be answered within its SLA today, and that
answer belongs to yesterday. After that, ``crm_store.kpis.stale_days`` knows a day cannot change.
A ticket, though, belongs to the day it was opened and may be resolved or rated weeks later:
the job keeps the month a dashboard shows; a read of an older period refreshes what changed.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from crm_store import kpis
from crm_store.models import utcnow

log = logging.getLogger(__name__)
# The dashboards' usual periods (7 and 30 days) and a day of margin; a 90-day view refreshes the
# older days it finds changed (or never rolled up) when it is read.
TICKET_DAYS = 31


def refresh_kpis() -> list[str]:
    """rq job (every few minutes, see ``workers.schedule``): refresh the stale rollups of today
    and yesterday, and the stale ticket rollups of the days before, in the brand's time zone;
    returns the days refreshed. Idempotent: two runs at once write the same rows (a day's rows are
    replaced in one transaction)."""
    from workers.jobs import runtime

    rt = runtime()
    rt.after_fork()
    zone = rt.settings.timezone
    today = kpis.brand_day(utcnow(), zone)
    period = kpis.Period(today - timedelta(days=1), today, zone)
    earlier = kpis.Period(today - timedelta(days=TICKET_DAYS - 1), today - timedelta(days=2), zone)
    with rt.uow() as uow:
        days = kpis.refresh_stale(uow, period, kpis.first_response_minutes(rt.content.rules))
        tickets = kpis.stale_ticket_days(uow, earlier)
        kpis.refresh_ticket_days(uow, tickets, zone)
        uow.commit()
    days = sorted(set(days) | set(tickets))
    if days:
        log.info("KPI rollups refreshed: %s", ", ".join(map(str, days)))
    return [day.isoformat() for day in days]
