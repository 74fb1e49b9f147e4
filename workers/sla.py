"""The SLA job: flags the open tickets near their due time or past it (``Ticket.sla_state``)
and keeps the due time a ticket missed (``sla_breached_at``), for the queue and the KPIs."""
from __future__ import annotations

import logging

from sqlalchemy import or_, select

from crm_store import models
from crm_store.models import Ticket, utcnow

log = logging.getLogger(__name__)


def check_sla() -> dict[str, int]:
    """rq job (every minute, see ``workers.schedule``): bring every open ticket's SLA flag up to
    date, and the missed due time of those open or closed since they were last looked at;
    returns how many tickets are near breach and breached now. Idempotent."""
    from workers.jobs import runtime

    rt = runtime()
    rt.after_fork()
    now = utcnow()
    counts = {"near": 0, "breached": 0}
    with rt.uow() as uow:
        # Open tickets, and closed ones still flagged (closed since the last run).
        tickets = uow.session.scalars(select(Ticket).where(or_(
            Ticket.status.in_((models.OPEN, models.CLAIMED)), Ticket.sla_state.is_not(None))))
        for ticket in tickets:
            state = ticket.sla(now)
            if state is not None:
                counts[state] += 1
            if ticket.sla_state != state:
                if state == "breached":
                    log.warning("ticket %s (%s) is past its SLA", ticket.reference, ticket.priority)
                ticket.sla_state = state
            missed = ticket.missed(now)
            if missed is not None and ticket.sla_breached_at is None:
                ticket.sla_breached_at = missed
        uow.commit()
    return counts
