"""The SLA job: flags the open tickets near their due time or past it (``Ticket.sla_state``),
keeps the due time a ticket missed (``sla_breached_at``), for the queue and the KPIs, and when
WeChat's 48-hour window of an open ticket's customer closes (``window_closes_at``)."""
from __future__ import annotations

import logging

from datetime import datetime, timedelta

from sqlalchemy import or_, select

from crm_store import models
from crm_store.models import Conversation, Message, Ticket, as_utc, utcnow
from crm_store.uow import UnitOfWork

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
        tickets = list(uow.session.scalars(select(Ticket).where(or_(
            Ticket.status.in_((models.OPEN, models.CLAIMED)), Ticket.sla_state.is_not(None)))))
        windows = reply_windows(uow, [t.conversation_id for t in tickets
                                      if t.conversation_id and t.status in (models.OPEN, models.CLAIMED)])
        for ticket in tickets:
            ticket.window_closes_at = windows.get(ticket.conversation_id)
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


WINDOW = timedelta(hours=48)  # WeChat's customer-service API reaches a user this long after they wrote


def reply_windows(uow: UnitOfWork, conversation_ids: list[int]) -> dict[int, datetime]:
    """For each WeChat conversation of these, when its 48-hour window closes: its customer's last
    inbound message + 48 h (each read back along the conversation's (conversation_id, id) index)."""
    found: dict[int, datetime] = {}
    wechat = set(uow.execute(select(Conversation.id).where(
        Conversation.id.in_(conversation_ids), Conversation.channel == "wechat")).scalars()) if conversation_ids else set()
    for conversation_id in wechat:
        last = uow.execute(select(Message.created_at).where(
            Message.conversation_id == conversation_id, Message.direction == "in").order_by(Message.id.desc())
            .limit(1)).scalar()
        if last is not None:
            found[conversation_id] = as_utc(last) + WINDOW
    return found
