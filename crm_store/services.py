"""Service functions: the one way views, bot flows and jobs change the store.

They take a unit of work and never commit; the caller decides the transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from channels import base
from channels.base import InboundMessage
from crm_store import models
from crm_store.models import ChannelIdentity, Conversation, Customer, Message, utcnow
from crm_store.uow import UnitOfWork

# References and report days follow the brand's clock (China Standard Time, no DST).
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


@dataclass(frozen=True)
class RecordedInbound:
    """Where an inbound message landed; ``duplicate`` means a platform retry of a stored one."""

    message_id: int
    conversation_id: int
    customer_id: int
    duplicate: bool
    stored_reply: str | None = None


def scoped_dedupe_key(msg: InboundMessage) -> str:
    """The store-wide unique key: platform dedupe keys are only unique per channel account."""
    return f"{msg.channel}:{msg.account}:{msg.dedupe_key}"


def find_recorded(msg: InboundMessage, uow: UnitOfWork) -> RecordedInbound | None:
    """The stored copy of ``msg`` and its passive reply, if this message was seen before."""
    existing = uow.messages.by_dedupe_key(scoped_dedupe_key(msg))
    if existing is None:
        return None
    reply = uow.messages.reply_to(existing.id)
    return RecordedInbound(existing.id, existing.conversation_id, existing.customer_id, True,
                           reply.text if reply is not None else None)


def record_inbound(msg: InboundMessage, uow: UnitOfWork) -> RecordedInbound:
    """Store ``msg`` once: the customer and identity on first contact, the open conversation,
    the message. A retry of a stored message returns the stored one (``duplicate=True``).
    A concurrent retry that races past the lookup fails on the unique dedupe key at flush
    (``sqlalchemy.exc.IntegrityError``); the caller rolls back and looks again.
    """
    found = find_recorded(msg, uow)
    if found is not None:
        return found
    now = utcnow()
    identity = uow.identities.find(msg.channel, msg.account, msg.external_user_id)
    if identity is None:
        customer = uow.customers.add(Customer())
        identity = uow.identities.add(ChannelIdentity(
            customer=customer, channel=msg.channel, account=msg.account, external_id=msg.external_user_id))
        uow.flush()
    identity.last_seen_at = now
    if msg.kind == base.SUBSCRIBE:
        identity.subscribed = True
        identity.subscribe_scene = msg.attributes.get("scene") or identity.subscribe_scene
    elif msg.kind == base.UNSUBSCRIBE:
        identity.subscribed = False
    conversation = uow.conversations.open_for(identity.id)
    if conversation is None:
        conversation = uow.conversations.add(Conversation(
            customer_id=identity.customer_id, identity_id=identity.id, channel=msg.channel, account=msg.account))
        uow.flush()
    conversation.last_message_at = now
    message = uow.messages.add(Message(
        conversation_id=conversation.id, customer_id=identity.customer_id, direction="in", kind=msg.kind,
        text=msg.text, attributes=dict(msg.attributes), raw=msg.raw, external_id=msg.external_message_id,
        dedupe_key=scoped_dedupe_key(msg), author="customer", sent_at=msg.sent_at))
    uow.flush()
    return RecordedInbound(message.id, conversation.id, identity.customer_id, False)


def record_outbound(conversation_id: int, text: str, uow: UnitOfWork, *, reply_to: int | None = None,
                    delivery: str = models.QUEUED, author: str = "bot") -> Message:
    """Store a message to the customer. ``PASSIVE`` = answered in the webhook response;
    ``QUEUED`` = waits for the send job (the row itself is the durable outbox)."""
    conversation = uow.conversations.get(conversation_id)
    if conversation is None:
        raise LookupError(f"conversation {conversation_id} does not exist")
    conversation.last_message_at = utcnow()
    message = uow.messages.add(Message(
        conversation_id=conversation_id, customer_id=conversation.customer_id, direction="out", kind=base.TEXT,
        text=text, reply_to_id=reply_to, author=author, delivery=delivery))
    uow.flush()
    return message


def next_reference(prefix: str, uow: UnitOfWork, digits: int = 4) -> str:
    """The next human-readable reference of the day, e.g. ``T20261123-0042``.

    One counter row per prefix and day, bumped with an upsert, so concurrent processes never
    hand out the same number (the row lock lasts until the transaction commits).
    """
    key = f"{prefix}{utcnow().astimezone(SHANGHAI):%Y%m%d}"
    dialect = postgresql if uow.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(models.ReferenceCounter).values(prefix_day=key, last=1)
    statement = statement.on_conflict_do_update(index_elements=["prefix_day"],
                                                set_={"last": models.ReferenceCounter.last + 1})
    uow.session.execute(statement)
    number = uow.session.scalar(select(models.ReferenceCounter.last).filter_by(prefix_day=key))
    return f"{key}-{number:0{digits}d}"


def open_ticket(customer_id: int, conversation_id: int | None, uow: UnitOfWork, *, source: str, category: str,
                priority: str, first_response_due: datetime, resolution_due: datetime, description: str = "",
                order_no: str | None = None) -> models.Ticket:
    """Put a ticket in the escalation queue with its reference and SLA due times."""
    ticket = models.Ticket(reference=next_reference("T", uow), customer_id=customer_id,
                           conversation_id=conversation_id, source=source, category=category, priority=priority,
                           description=description, order_no=order_no, first_response_due=first_response_due,
                           resolution_due=resolution_due)
    uow.session.add(ticket)
    uow.flush()
    return ticket


def open_handoff(conversation_id: int, uow: UnitOfWork) -> models.Ticket | None:
    """The hand-off ticket an agent has (or will) take over this conversation with, if any."""
    return uow.session.scalar(select(models.Ticket).filter(
        models.Ticket.conversation_id == conversation_id, models.Ticket.source == "handoff",
        models.Ticket.status.in_((models.OPEN, models.CLAIMED))).limit(1))


def claim_ticket(ticket_id: int, agent: str, uow: UnitOfWork) -> models.Ticket:
    ticket = _ticket(ticket_id, uow)
    if ticket.status == models.RESOLVED:
        raise ValueError(f"ticket {ticket.reference} is already resolved")
    ticket.status, ticket.assignee = models.CLAIMED, agent
    return ticket


def resolve_ticket(ticket_id: int, agent: str, uow: UnitOfWork, *, complaint_level: str | None = None,
                   compensation: str | None = None) -> models.Ticket:
    """Close a ticket; complaint level and compensation (coupon, points) are recorded here."""
    ticket = _ticket(ticket_id, uow)
    if ticket.status == models.RESOLVED:
        raise ValueError(f"ticket {ticket.reference} is already resolved")
    ticket.status, ticket.resolved_at = models.RESOLVED, utcnow()
    ticket.assignee = ticket.assignee or agent
    ticket.complaint_level, ticket.compensation = complaint_level, compensation
    return ticket


def record_csat(ticket_id: int, score: int, uow: UnitOfWork, comment: str | None = None) -> models.Ticket:
    if not 1 <= score <= 5:
        raise ValueError("a satisfaction score is 1 to 5")
    ticket = _ticket(ticket_id, uow)
    ticket.csat_score = score
    if comment is not None:
        ticket.csat_comment = comment
    return ticket


def _ticket(ticket_id: int, uow: UnitOfWork) -> models.Ticket:
    ticket = uow.session.get(models.Ticket, ticket_id)
    if ticket is None:
        raise LookupError(f"ticket {ticket_id} does not exist")
    return ticket


def capture_lead(customer_id: int, uow: UnitOfWork, *, name: str, phone: str, interest: str, source_channel: str,
                 keyword: str | None = None, campaign: str | None = None) -> tuple[models.Lead, bool]:
    """Record a lead; a phone that already has an open lead updates that lead instead (dedupe).
    Returns the lead and whether it is new."""
    lead = uow.session.scalar(select(models.Lead).filter(
        models.Lead.phone == phone, models.Lead.status.notin_(("converted", "lost"))).limit(1))
    if lead is not None:
        lead.interest = f"{lead.interest}\n{interest}" if interest not in lead.interest else lead.interest
        lead.updated_at = utcnow()
        return lead, False
    lead = models.Lead(customer_id=customer_id, name=name, phone=phone, interest=interest,
                       source_channel=source_channel, keyword=keyword, campaign=campaign)
    uow.session.add(lead)
    uow.flush()
    return lead, True


def set_lead_status(lead_id: int, status: str, uow: UnitOfWork) -> models.Lead:
    if status not in models.LEAD_STATUSES:
        raise ValueError(f"lead status must be one of {', '.join(models.LEAD_STATUSES)}")
    lead = uow.session.get(models.Lead, lead_id)
    if lead is None:
        raise LookupError(f"lead {lead_id} does not exist")
    lead.status, lead.updated_at = status, utcnow()
    return lead
