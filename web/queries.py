"""What the console and the API read: the queue, a ticket, a customer's 360° view. One query per
view, shared by both, so a page and its API answer can never disagree."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Sequence

from sqlalchemy import Text, case, cast as sa_cast, func, or_, select

from config.content import LevelRule
from crm_store import listening, membership, models
from crm_store.models import AuditEntry, Conversation, Customer, Message, Ticket, TicketNote, as_utc, utcnow
from crm_store.uow import UnitOfWork
from nlp import analysis

PAGE_SIZE = 50
# WeChat's customer-service send reaches a user for 48 hours after their last message.
REPLY_WINDOW = timedelta(hours=48)
OPEN_STATES = (models.OPEN, models.CLAIMED)
# The due time that matters now: the first response's until it is made, then the resolution's.
DUE = case((Ticket.first_response_at.is_(None), Ticket.first_response_due), else_=Ticket.resolution_due)


@dataclass(frozen=True)
class QueueFilter:
    """The queue's filters; ``None`` (or False) leaves a filter off."""

    status: str | None = None
    statuses: Sequence[str] = ()
    priority: str | None = None
    category: str | None = None
    channel: str | None = None
    assignee: str | None = None
    unassigned: bool = False
    breached: bool | None = None

    def where(self, now: datetime) -> list[Any]:
        clauses: list[Any] = []
        if self.status:
            clauses.append(Ticket.status == self.status)
        elif self.statuses:
            clauses.append(Ticket.status.in_(self.statuses))
        for name in ("priority", "category", "assignee"):
            if getattr(self, name):
                clauses.append(getattr(Ticket, name) == getattr(self, name))
        if self.unassigned:
            clauses.append(Ticket.assignee.is_(None))
        if self.channel:
            # A ticket's channel is its conversation's, or, for one made from a mention, the mention's.
            clauses.append(Ticket.conversation_id.in_(select(Conversation.id).filter_by(channel=self.channel))
                           | Ticket.id.in_(select(models.Mention.ticket_id).filter_by(channel=self.channel)))
        if self.breached is not None:
            clauses.append(Ticket.breached(now) if self.breached else ~Ticket.breached(now))
        return clauses


def ticket_queue(uow: UnitOfWork, filters: QueueFilter, page: int = 1, size: int = PAGE_SIZE) -> list[Ticket]:
    """Tickets by due time, then priority; up to ``size + 1`` rows, so the caller knows if more follow."""
    statement = select(Ticket).where(*filters.where(utcnow())).order_by(DUE, Ticket.priority, Ticket.id)
    return list(uow.session.scalars(statement.offset((page - 1) * size).limit(size + 1)))


@dataclass(frozen=True)
class QueueCounts:
    open: int
    claimed: int
    unassigned: int
    breached: int
    mine: int


def queue_counts(uow: UnitOfWork, me: str) -> QueueCounts:
    """The live counts over the open queue, in one pass."""
    now = utcnow()
    row = uow.session.execute(select(
        func.count().filter(Ticket.status == models.OPEN),
        func.count().filter(Ticket.status == models.CLAIMED),
        func.count().filter(Ticket.assignee.is_(None)),
        func.count().filter(Ticket.breached(now)),
        func.count().filter(Ticket.assignee == me),
    ).where(Ticket.status.in_(OPEN_STATES))).one()
    return QueueCounts(*row)


def ticket_by_reference(reference: str, uow: UnitOfWork) -> Ticket | None:
    return uow.session.scalar(select(Ticket).filter_by(reference=reference))


def conversation_messages(conversation_id: int, uow: UnitOfWork, limit: int = 500) -> list[Message]:
    """The last ``limit`` messages of a conversation, oldest first."""
    rows = uow.session.scalars(select(Message).filter_by(conversation_id=conversation_id)
                               .order_by(Message.id.desc()).limit(limit))
    return list(reversed(list(rows)))


def latest_messages(customer_id: int, uow: UnitOfWork, limit: int) -> list[Message]:
    """The customer's last ``limit`` messages on every channel, oldest first.

    Read through the customer's conversations: a message's customer is its conversation's (one
    foreign key holds both), and the (conversation_id, id) index keeps each conversation's messages
    in order. Messages have no index on customer_id, which would cost every webhook insert; read by
    customer_id, this scanned the whole table (0.2-0.6 s at a million messages). With the
    conversations' ids in hand, a customer on one channel (most are) is a walk back along that
    index that stops after ``limit`` rows, however long the conversation has grown."""
    conversations = list(uow.session.scalars(select(Conversation.id).filter_by(customer_id=customer_id)))
    if not conversations:
        return []
    rows = uow.session.scalars(select(Message).where(Message.conversation_id.in_(conversations))
                               .order_by(Message.id.desc()).limit(limit))
    return list(reversed(list(rows)))


@dataclass
class TicketView:
    """A ticket's workspace: the ticket, its customer's messages on every channel, notes, trail."""

    ticket: Ticket
    customer: Customer
    channel: str | None
    messages: list[Message]
    notes: list[TicketNote]
    audit: list[AuditEntry]
    window_closes_at: datetime | None  # WeChat's 48-hour reply window, from the last inbound message
    mention: models.Mention | None = None  # the public post it was made from (replies go under it)

    def window_left(self, now: datetime) -> timedelta | None:
        return None if self.window_closes_at is None else max(self.window_closes_at - now, timedelta(0))


def ticket_view(ticket: Ticket, uow: UnitOfWork, message_limit: int = 200) -> TicketView:
    """The workspace of ``ticket``: the customer's whole conversation across channels, newest last."""
    messages = latest_messages(ticket.customer_id, uow, message_limit)
    conversation = uow.session.get(Conversation, ticket.conversation_id) if ticket.conversation_id else None
    last_inbound = None
    if conversation is not None:
        # The newest inbound message is the one with the highest id (ids follow arrival): a walk back
        # along the conversation's index, where max(created_at) read every message of it.
        last_inbound = uow.session.scalar(select(Message.created_at).filter_by(
            conversation_id=conversation.id, direction="in").order_by(Message.id.desc()).limit(1))
    mention = listening.mention_of(uow, ticket_id=ticket.id) if ticket.source == "mention" else None
    return TicketView(
        ticket=ticket, customer=uow.session.get(Customer, ticket.customer_id), mention=mention,
        channel=mention.channel if mention else conversation.channel if conversation else None, messages=messages,
        notes=list(uow.session.scalars(select(TicketNote).filter_by(ticket_id=ticket.id).order_by(TicketNote.id))),
        audit=audit_trail(uow, "ticket", ticket.reference),
        window_closes_at=as_utc(last_inbound) + REPLY_WINDOW if last_inbound and conversation.channel == "wechat"
        else None)


def audit_trail(uow: UnitOfWork, target_type: str | None = None, target_id: str | None = None,
                actor: str | None = None, page: int = 1, size: int = PAGE_SIZE) -> list[AuditEntry]:
    """Audit entries, newest first for the log, oldest first for one record's trail."""
    statement = select(AuditEntry)
    if target_type is not None:
        statement = statement.filter_by(target_type=target_type, target_id=target_id)
        return list(uow.session.scalars(statement.order_by(AuditEntry.id)))
    if actor:
        statement = statement.filter_by(actor=actor)
    return list(uow.session.scalars(statement.order_by(AuditEntry.id.desc()).offset((page - 1) * size)
                                    .limit(size + 1)))


def find_customers(q: str, uow: UnitOfWork, size: int = PAGE_SIZE) -> list[Customer]:
    """Customers by name (part of it), phone, channel id (openid) or membership card number."""
    q = q.strip()
    return list(uow.session.scalars(
        select(Customer).where(or_(
            Customer.display_name.like(f"%{q}%"), Customer.phone == q,
            Customer.id.in_(select(models.ChannelIdentity.customer_id).filter_by(external_id=q)),
            Customer.id.in_(select(models.Member.customer_id).where(
                or_(models.Member.card_no == q, models.Member.phone == q))))).order_by(Customer.id)
        .limit(size + 1)))


@dataclass(frozen=True)
class MemberView:
    id: int
    card_no: str
    balance: int
    level: str
    history: list[models.PointsEntry]


@dataclass(frozen=True)
class Mood:
    """The sentiment of one of the customer's messages, read by the trained model."""

    message_id: int
    at: datetime
    label: str  # pos | neu | neg
    score: float


@dataclass
class CustomerView:
    """The 360° view: one customer on every channel."""

    customer: Customer
    identities: list[models.ChannelIdentity]
    member: MemberView | None
    tickets: list[Ticket]
    leads: list[models.Lead]
    recent_messages: list[Message]
    sentiment: list[Mood] = field(default_factory=list)
    merges: list[models.CustomerMerge] = field(default_factory=list)


def customer_view(customer_id: int, uow: UnitOfWork, levels: Sequence[LevelRule]) -> CustomerView | None:
    customer = uow.session.get(Customer, customer_id)
    if customer is None:
        return None
    member = membership.member_of(customer_id, uow)
    member_view = None if member is None else MemberView(
        member.id, member.card_no, membership.balance(member.id, uow), membership.level(member.id, levels, uow).name,
        membership.history(member.id, uow, 20))
    recent = latest_messages(customer_id, uow, 50)
    return CustomerView(
        customer=customer,
        identities=list(uow.session.scalars(select(models.ChannelIdentity).filter_by(customer_id=customer_id))),
        member=member_view,
        tickets=list(uow.session.scalars(select(Ticket).filter_by(customer_id=customer_id).order_by(Ticket.id.desc()))),
        leads=list(uow.session.scalars(select(models.Lead).filter_by(customer_id=customer_id)
                                       .order_by(models.Lead.id.desc()))),
        recent_messages=recent, sentiment=sentiment_history(recent),
        merges=list(uow.session.scalars(select(models.CustomerMerge).where(or_(
            models.CustomerMerge.into_customer_id == customer_id,
            models.CustomerMerge.from_customer_id == customer_id)).order_by(models.CustomerMerge.id.desc()))))


def sentiment_history(messages: Sequence[Message]) -> list[Mood]:
    """The trained sentiment model's reading of the customer's own text messages, oldest first.
    Read when shown: the models are loaded in every web process already, and a message is scored
    in well under a millisecond."""
    moods = []
    for message in messages:
        if message.direction == "in" and message.kind == "text" and message.text.strip():
            reading = analysis.sentiment(message.text)
            moods.append(Mood(message.id, message.created_at, reading.label, round(reading.score, 3)))
    return moods


# --- listening: mentions, watch terms, polls ---------------------------------------------------

MENTION_LINKS = ("ticket", "lead", "none")


@dataclass(frozen=True)
class MentionFilter:
    """The mention stream's filters; ``None`` leaves a filter off."""

    channel: str | None = None
    sentiment: str | None = None  # pos | neu | neg
    watch_term: str | None = None
    min_followers: int | None = None
    linked: str | None = None  # ticket | lead | none
    intent: str | None = None

    def where(self) -> list[Any]:
        mention = models.Mention
        clauses: list[Any] = []
        for name in ("channel", "sentiment", "intent"):
            if getattr(self, name):
                clauses.append(getattr(mention, name) == getattr(self, name))
        if self.watch_term:
            # The matched terms are a JSON list: matched as the JSON text of the term, quotes
            # included, so "tea" does not find "milk tea". Stored JSON escapes non-ASCII, and so
            # does json.dumps; autoescape keeps % and _ in a term literal.
            clauses.append(sa_cast(mention.watch_terms, Text).contains(
                json.dumps(" ".join(self.watch_term.split()).lower()), autoescape=True))
        if self.min_followers:
            clauses.append(mention.author_followers >= self.min_followers)
        if self.linked == "ticket":
            clauses.append(mention.ticket_id.is_not(None))
        elif self.linked == "lead":
            clauses.append(mention.lead_id.is_not(None))
        elif self.linked == "none":
            clauses.append(mention.ticket_id.is_(None) & mention.lead_id.is_(None))
        return clauses


@dataclass
class MentionView:
    """A mention with the reference of the ticket it became and, for one mention's page, the
    public replies sent under it with their delivery state."""

    mention: models.Mention
    ticket_reference: str | None
    replies: list[Message] = field(default_factory=list)


def _with_tickets(statement: Any) -> Any:
    return statement.add_columns(Ticket.reference).outerjoin(Ticket, Ticket.id == models.Mention.ticket_id)


def mention_stream(uow: UnitOfWork, filters: MentionFilter, page: int = 1, size: int = PAGE_SIZE) -> list[MentionView]:
    """Mentions newest first (by the time they were posted); up to ``size + 1``."""
    statement = _with_tickets(select(models.Mention)).where(*filters.where()).order_by(
        models.Mention.created_at.desc(), models.Mention.id.desc())
    rows = uow.session.execute(statement.offset((page - 1) * size).limit(size + 1))
    return [MentionView(mention, reference) for mention, reference in rows]


def mention_view(mention_id: int, uow: UnitOfWork) -> MentionView | None:
    """One mention, its ticket's reference, and the replies sent under it, oldest first."""
    row = uow.session.execute(_with_tickets(select(models.Mention)).where(models.Mention.id == mention_id)).first()
    if row is None:
        return None
    mention, reference = row
    replies: list[Message] = []
    if mention.customer_id is not None:
        # The author's conversations on this channel hold the replies; each names its mention.
        conversations = select(Conversation.id).filter_by(customer_id=mention.customer_id, channel=mention.channel)
        replies = [m for m in uow.session.scalars(select(Message).where(
            Message.conversation_id.in_(conversations), Message.direction == "out").order_by(Message.id))
            if (m.attributes or {}).get("mention_id") == mention.id]
    return MentionView(mention, reference, replies)


def listening_status(uow: UnitOfWork) -> list[models.PollRun]:
    """The last poll run of every source of every account, by channel and source."""
    last = select(func.max(models.PollRun.id)).group_by(
        models.PollRun.channel, models.PollRun.account, models.PollRun.source)
    return list(uow.session.scalars(select(models.PollRun).where(models.PollRun.id.in_(last)).order_by(
        models.PollRun.channel, models.PollRun.account, models.PollRun.source)))


def poll_runs(uow: UnitOfWork, channel: str | None = None, page: int = 1, size: int = PAGE_SIZE) -> list[models.PollRun]:
    """Poll runs, newest first."""
    statement = select(models.PollRun)
    if channel:
        statement = statement.filter_by(channel=channel)
    return list(uow.session.scalars(statement.order_by(models.PollRun.id.desc()).offset((page - 1) * size)
                                    .limit(size + 1)))


def count(uow: UnitOfWork, statement: Any) -> int:
    """How many rows ``statement`` selects."""
    return uow.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
