"""The analysis of inbound messages, kept beside them (``MessageAnalysis``).

The store is the analysis job's queue: a text message without an analysis is waiting for one.
So nothing is enqueued on the webhook's path, a message is never lost when Redis is away, and
running the job twice stores each analysis once (the message id is the key).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import func, select

from crm_store import models, staff
from crm_store.models import Message, MessageAnalysis, Ticket, as_utc, utcnow
from crm_store.references import _insert
from crm_store.uow import UnitOfWork

# How far back (in message ids) the job looks for messages without an analysis. Ids are handed
# out before a transaction commits, so a message may become visible after higher ids were
# analysed: a window, not a cursor, keeps such a message from being skipped.
WINDOW = 20_000
MAX_LAG_MS = 2**31 - 1  # message_analyses.lag_ms is a 32-bit integer (24.8 days)


@dataclass(frozen=True)
class Waiting:
    """An inbound text message waiting for its analysis."""

    id: int
    conversation_id: int
    text: str
    created_at: datetime


def waiting(uow: UnitOfWork, limit: int = 2000, window: int = WINDOW) -> list[Waiting]:
    """The oldest inbound text messages of the last ``window`` ids that have no analysis yet."""
    newest = uow.execute(select(func.max(Message.id))).scalar() or 0
    analysed = select(MessageAnalysis.message_id).where(MessageAnalysis.message_id == Message.id).exists()
    rows = uow.execute(select(Message.id, Message.conversation_id, Message.text, Message.created_at).where(
        Message.id > newest - window, Message.direction == "in", Message.kind == "text", Message.text != "",
        ~analysed).order_by(Message.id).limit(limit))
    return [Waiting(id_, conversation_id, text, as_utc(created)) for id_, conversation_id, text, created in rows]


def store(uow: UnitOfWork, analyses: Sequence[dict[str, Any]]) -> dict[int, int]:
    """Insert these analyses (each a ``MessageAnalysis``'s columns, and the message's
    ``created_at``) unless the message has one already; returns the messages this call stored,
    with their lag in milliseconds, in order."""
    if not analyses:
        return {}
    now = utcnow()
    # Clamped to what the column holds: an old message analysed late (a first deploy, a long
    # outage) must not fail its batch, or every batch after it.
    rows = [{**a, "analyzed_at": now, "lag_ms": min(max(int((now - a.pop("created_at")).total_seconds() * 1000), 0),
                                                    MAX_LAG_MS)}
            for a in (dict(x) for x in analyses)]
    lags = {row["message_id"]: row["lag_ms"] for row in rows}
    uow.flush()
    table = MessageAnalysis.__table__
    stored = uow.connection.execute(_insert(uow, MessageAnalysis).on_conflict_do_nothing().returning(
        table.c.message_id, sort_by_parameter_order=True), rows).scalars()
    return {message_id: lags[message_id] for message_id in stored}


def mark(uow: UnitOfWork, message_id: int, escalation: str) -> None:
    analysis = uow.session.get(MessageAnalysis, message_id)
    if analysis is not None:
        analysis.escalation = escalation


def raise_priority(ticket: Ticket, priority: str, first_due: datetime, resolution_due: datetime,
                   uow: UnitOfWork, reason: str, category: str | None = None) -> None:
    """Give the ticket a higher priority and the earlier due times that go with it (and
    ``category``, when a later message says what the problem is: food safety); audited as the
    analysis's doing."""
    category = category or ticket.category
    staff.audit("analysis", "priority.raise", uow, "ticket", ticket.reference, previous=ticket.priority,
                priority=priority, reason=reason,
                **({"previous_category": ticket.category, "category": category} if category != ticket.category else {}))
    ticket.priority, ticket.category = priority, category
    ticket.first_response_due = min(as_utc(ticket.first_response_due), first_due)
    ticket.resolution_due = min(as_utc(ticket.resolution_due), resolution_due)


def raised_before(ticket: Ticket, uow: UnitOfWork) -> bool:
    """Whether the analysis raised this ticket already (once is enough: a customer's every angry
    line must not walk a ticket to P1)."""
    return uow.execute(select(models.AuditEntry.id).filter_by(
        actor="analysis", action="priority.raise", target_type="ticket", target_id=ticket.reference)).first() is not None
