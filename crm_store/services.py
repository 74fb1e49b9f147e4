"""Service functions: the one way views, bot flows and jobs change the store.

They take a unit of work and never commit; the caller decides the transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from sqlalchemy import DateTime, Insert, String, Table, bindparam, case, func, insert, or_, select, text, update

from channels import base
from config.content import BotContent
from channels.base import InboundMessage
from crm_store import listening, membership, models, staff
from crm_store.references import SHANGHAI, next_reference  # noqa: F401 - SHANGHAI is used by callers
from crm_store.models import ChannelIdentity, Conversation, Customer, Message, utcnow
from crm_store.uow import UnitOfWork



@dataclass(frozen=True)
class RecordedInbound:
    """Where an inbound message landed; ``duplicate`` means a platform retry of a stored one."""

    message_id: int
    conversation_id: int
    customer_id: int
    duplicate: bool
    stored_reply: str | None = None
    agent_owned: bool = False  # a hand-off ticket is open: an agent, not the bot, answers
    state: Mapping[str, Any] = field(default_factory=dict)  # the bot's state of the conversation


class ReplayedPush(Exception):
    """A signed request that carried another payload before (see ``InboundMessage.push_key``):
    a captured query string reused with a forged body. Nothing is stored."""


def scoped_dedupe_key(msg: InboundMessage) -> str:
    """The store-wide unique key: platform dedupe keys are only unique per channel account."""
    return f"{msg.channel}:{msg.account}:{msg.dedupe_key}"


# The hot path's statements: built once on the tables with bound parameters, so SQLAlchemy
# compiles each once per dialect (its compiled cache) and psycopg may prepare it on the server.
_identities, _conversations = ChannelIdentity.__table__, Conversation.__table__
_messages, _customers, _tickets = Message.__table__, Customer.__table__, models.Ticket.__table__


def _insert_returning_id(table: Table, *columns: str) -> Insert:
    """INSERT of exactly ``columns`` (parameters named after them), returning the new id."""
    return insert(table).values({c: bindparam(c) for c in columns}).returning(table.c.id)


# Two comparisons, not IN: SQLAlchemy renders an IN list anew at every execution (it is
# "expanding"), which cost this statement, run by every webhook, about a tenth of its time.
_AGENT_OWNED = select(_tickets.c.id).where(
    _tickets.c.conversation_id == _conversations.c.id, _tickets.c.source == "handoff",
    or_(_tickets.c.status == models.OPEN, _tickets.c.status == models.CLAIMED)).exists()
# The bot's state while it lives; compared in SQL, where both stores order times alike.
_LIVE_STATE = case((_identities.c.state_expires_at > bindparam("now", type_=DateTime(timezone=True)),
                    _identities.c.state)).label("state")
_IDENTITY_OF_CONVERSATION = select(_conversations.c.identity_id).where(
    _conversations.c.id == bindparam("conversation_id")).scalar_subquery()
FIND_IDENTITY = (
    select(_identities.c.id, _identities.c.customer_id, _conversations.c.id.label("conversation_id"),
           _AGENT_OWNED.label("agent_owned"), _LIVE_STATE)
    .select_from(_identities.outerjoin(_conversations, (_conversations.c.identity_id == _identities.c.id)
                                       & (_conversations.c.status == "open")))
    .where(_identities.c.channel == bindparam("channel"), _identities.c.account == bindparam("account"),
           _identities.c.external_id == bindparam("external_id"))
    .order_by(_conversations.c.id.desc()).limit(1).with_for_update(of=_identities))
INSERT_CUSTOMER = _insert_returning_id(_customers, "created_at")
INSERT_IDENTITY = _insert_returning_id(_identities, "customer_id", "channel", "account", "external_id",
                                       "subscribed", "created_at")
INSERT_CONVERSATION = _insert_returning_id(_conversations, "customer_id", "identity_id", "channel", "account",
                                           "status", "opened_at")
SET_SUBSCRIBED = update(_identities).where(_identities.c.id == bindparam("identity_id")).values(
    subscribed=bindparam("is_subscribed"),
    subscribe_scene=func.coalesce(bindparam("scene", type_=String), _identities.c.subscribe_scene))
CONVERSATION_CUSTOMER = select(_conversations.c.customer_id).where(
    _conversations.c.id == bindparam("conversation_id"))
INSERT_OUTBOUND = _insert_returning_id(_messages, "conversation_id", "customer_id", "direction", "kind", "text",
                                       "attributes", "raw", "reply_to_id", "author", "delivery", "attempts",
                                       "sent_at", "created_at")
_NEW_MESSAGE_COLUMNS = ("conversation_id", "customer_id", "direction", "kind", "text", "attributes", "raw",
                        "external_id", "dedupe_key", "push_key", "author", "attempts", "sent_at", "created_at")
# Written as SQL because ON CONFLICT is a dialect's own construct in SQLAlchemy; this reads the
# same on SQLite (3.35+) and PostgreSQL. Typed parameters keep JSON and timestamps stored as elsewhere.
# No conflict target: a stored dedupe key (a retry) and a stored push key (a signed request seen
# before) both insert nothing, and ``record_inbound`` tells which.
INSERT_NEW_MESSAGE = text(
    f"INSERT INTO messages ({', '.join(_NEW_MESSAGE_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _NEW_MESSAGE_COLUMNS)}) "
    "ON CONFLICT DO NOTHING RETURNING id"
).bindparams(*(bindparam(c, type_=_messages.c[c].type) for c in _NEW_MESSAGE_COLUMNS))
FIND_MESSAGE = select(_messages.c.id, _messages.c.conversation_id, _messages.c.customer_id, _messages.c.raw).where(
    _messages.c.dedupe_key == bindparam("key"))
FIND_REPLY = select(_messages.c.text).where(_messages.c.reply_to_id == bindparam("message_id")).order_by(
    _messages.c.id).limit(1)
CONVERSATION_STATE = select(_LIVE_STATE).where(_identities.c.id == _IDENTITY_OF_CONVERSATION)
SAVE_STATE = update(_identities).where(_identities.c.id == _IDENTITY_OF_CONVERSATION).values(
    state=bindparam("state_value"), state_expires_at=bindparam("expires_at"))


def find_recorded(msg: InboundMessage, uow: UnitOfWork) -> RecordedInbound | None:
    """The stored copy of ``msg`` and its passive reply, if this message was seen before."""
    existing = uow.execute(FIND_MESSAGE, {"key": scoped_dedupe_key(msg)}).first()
    if existing is None:
        return None
    message_id, conversation_id, customer_id, raw = existing
    if msg.push_key is not None and raw != msg.raw:
        raise ReplayedPush(f"{msg.channel} message {msg.dedupe_key} came before with another payload")
    reply = uow.execute(FIND_REPLY, {"message_id": message_id}).scalar()
    return RecordedInbound(message_id, conversation_id, customer_id, True, reply)


def _scoped_push_key(msg: InboundMessage) -> str | None:
    return f"{msg.channel}:{msg.account}:{msg.push_key}" if msg.push_key is not None else None


def record_inbound(msg: InboundMessage, uow: UnitOfWork) -> RecordedInbound:
    """Store ``msg`` once: the customer and identity on first contact, the open conversation,
    the message. A retry of a stored message returns the stored one (``duplicate=True``).

    This is the webhook's hot path: one read and one insert for a known customer; the read also
    tells whether an agent owns the conversation and brings the bot's state. It locks the customer's identity row until the transaction ends (FOR
    UPDATE on PostgreSQL; SQLite's write lock does the same), so two messages of one customer are
    handled one after the other, and the second reads the state the first saved on that row.
    Two first messages of a new customer race on the identity's unique key (``IntegrityError``);
    the caller retries. A signed request seen before with another payload raises ``ReplayedPush``
    (the same payload again is a retry: it gets the stored reply).
    """
    now = utcnow()
    found = uow.execute(FIND_IDENTITY, {"channel": msg.channel, "account": msg.account,
                                        "external_id": msg.external_user_id, "now": now}).first()
    state = None
    if found is None:
        customer_id = uow.execute(INSERT_CUSTOMER, {"created_at": now}).scalar()
        identity_id = uow.execute(INSERT_IDENTITY, {
            "customer_id": customer_id, "channel": msg.channel, "account": msg.account,
            "external_id": msg.external_user_id, "subscribed": False, "created_at": now}).scalar()
        conversation_id, agent_owned = None, False
    else:
        identity_id, customer_id, conversation_id, agent_owned, state = found
    if conversation_id is None:
        conversation_id = uow.execute(INSERT_CONVERSATION, {
            "customer_id": customer_id, "identity_id": identity_id, "channel": msg.channel, "account": msg.account,
            "status": "open", "opened_at": now}).scalar()
    message_id = uow.execute(INSERT_NEW_MESSAGE, {
        "conversation_id": conversation_id, "customer_id": customer_id, "direction": "in", "kind": msg.kind,
        "text": msg.text, "attributes": dict(msg.attributes), "raw": msg.raw, "external_id": msg.external_message_id,
        "dedupe_key": scoped_dedupe_key(msg), "push_key": _scoped_push_key(msg), "author": "customer",
        "attempts": 0, "sent_at": msg.sent_at, "created_at": now}).scalar()
    if message_id is None:  # a retry of a message already stored, or a signed request reused
        recorded = find_recorded(msg, uow)
        if recorded is None:  # not this message: the request's push key carried another
            raise ReplayedPush(f"{msg.channel} push {msg.push_key} came before with another payload")
        return recorded
    if msg.kind in (base.SUBSCRIBE, base.UNSUBSCRIBE):
        uow.execute(SET_SUBSCRIBED, {"identity_id": identity_id, "is_subscribed": msg.kind == base.SUBSCRIBE,
                                     "scene": msg.attributes.get("scene") or None})
    return RecordedInbound(message_id, conversation_id, customer_id, False, agent_owned=bool(agent_owned),
                           state=state or {})


def conversation_state(conversation_id: int, uow: UnitOfWork) -> dict[str, Any]:
    """The bot's state of a conversation: empty when there is none or it has expired."""
    state = uow.execute(CONVERSATION_STATE, {"conversation_id": conversation_id, "now": utcnow()}).scalar()
    return dict(state or {})


def save_conversation_state(conversation_id: int, state: Mapping[str, Any], uow: UnitOfWork, ttl: int) -> None:
    """Keep the bot's state of a conversation for ``ttl`` seconds, in the caller's transaction:
    it lands or is undone together with the message that changed it. It is kept on the
    conversation's channel identity (see ``ChannelIdentity.state``)."""
    uow.execute(SAVE_STATE, {"conversation_id": conversation_id, "state_value": dict(state) or None,
                             "expires_at": utcnow() + timedelta(seconds=ttl)})


def record_outbound(conversation_id: int, text: str, uow: UnitOfWork, *, reply_to: int | None = None,
                    delivery: str = models.QUEUED, author: str = "bot", customer_id: int | None = None,
                    attributes: Mapping[str, Any] | None = None) -> int:
    """Store a message to the customer and return its id. ``PASSIVE`` = answered in the webhook
    response; ``QUEUED`` = waits for the send job (the row itself is the durable outbox).
    ``customer_id`` saves a read when the caller knows it. ``attributes`` holds what the send
    needs besides the text: ``models.PUBLIC_REPLY`` names the post or comment a public reply answers."""
    now = utcnow()
    if customer_id is None:
        customer_id = uow.execute(CONVERSATION_CUSTOMER, {"conversation_id": conversation_id}).scalar()
        if customer_id is None:
            raise LookupError(f"conversation {conversation_id} does not exist")
    return uow.execute(INSERT_OUTBOUND, {
        "conversation_id": conversation_id, "customer_id": customer_id, "direction": "out", "kind": base.TEXT,
        "text": text, "attributes": dict(attributes or {}), "raw": "", "reply_to_id": reply_to, "author": author,
        "delivery": delivery,
        "attempts": 0, "sent_at": now, "created_at": now}).scalar()


def record_passive_reply(recorded: RecordedInbound, text: str, uow: UnitOfWork, latency_ms: int | None = None) -> int:
    """Store the reply returned in the webhook's response to ``recorded`` (a platform retry of the
    message gets it again), with how long the bot took to answer (``BOT_LATENCY``, for the KPIs)."""
    return record_outbound(recorded.conversation_id, text, uow, reply_to=recorded.message_id,
                           delivery=models.PASSIVE, customer_id=recorded.customer_id,
                           attributes=None if latency_ms is None else {BOT_LATENCY: latency_ms})


# The attribute of a passive reply holding the bot's latency in milliseconds: from the message's
# arrival in ``bot.inbox.receive`` (the models' reading included) to its reply written.
BOT_LATENCY = "latency_ms"


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


class TicketConflict(ValueError):
    """The ticket is not in a state for this action: another agent holds it, or it is closed.
    ``holder`` or ``status`` say which, for a caller that words it in the reader's language."""

    def __init__(self, ticket: models.Ticket) -> None:
        self.reference, self.holder = ticket.reference, None
        self.status = ticket.status
        if ticket.status in (models.RESOLVED, models.CANCELLED):
            super().__init__(f"ticket {ticket.reference} is {ticket.status} already")
        else:
            self.holder = ticket.assignee
            super().__init__(f"ticket {ticket.reference} is held by {ticket.assignee}")


class NoMembershipCard(ValueError):
    """Points cannot be credited: the customer has no membership card."""


def _open_ticket_for(ticket_id: int, agent: str, uow: UnitOfWork) -> models.Ticket:
    """The ticket, locked until the transaction ends, if ``agent`` may act on it now."""
    ticket = _ticket(ticket_id, uow, for_update=True)  # two claims at once: one wins
    if ticket.status in (models.RESOLVED, models.CANCELLED) or \
            ticket.status == models.CLAIMED and ticket.assignee != agent:
        raise TicketConflict(ticket)
    return ticket


def claim_ticket(ticket_id: int, agent: str, uow: UnitOfWork) -> models.Ticket:
    """``agent`` takes the ticket; ``TicketConflict`` when another agent holds it or it is closed."""
    ticket = _open_ticket_for(ticket_id, agent, uow)
    if ticket.status != models.CLAIMED:
        ticket.status, ticket.assignee = models.CLAIMED, agent
        staff.audit(agent, "claim", uow, "ticket", ticket.reference)
    return ticket


def resolve_ticket(ticket_id: int, agent: str, uow: UnitOfWork, *, complaint_level: str | None = None,
                   compensation: str | None = None, compensation_points: int = 0, category: str | None = None,
                   note: str | None = None) -> models.Ticket:
    """Close a ticket with its complaint level, compensation and (corrected) category.

    Compensation in points is credited through the member's ledger, once per ticket (its
    idempotency key), in the same transaction: ``ValueError`` when the customer has no card."""
    ticket = _open_ticket_for(ticket_id, agent, uow)
    if compensation_points:
        if compensation_points < 0:
            raise ValueError("compensation points are a positive number")
        member_id = membership.member_id_of(ticket.customer_id, uow)
        if member_id is None:
            raise NoMembershipCard("the customer has no membership card to credit points to")
        membership.add_points(member_id, "adjust", compensation_points, f"compensation for {ticket.reference}",
                              f"ticket:{ticket.reference}:compensation", uow)
        compensation = "; ".join(filter(None, (compensation, f"{compensation_points} points")))
    ticket.status, ticket.resolved_at = models.RESOLVED, utcnow()
    ticket.assignee = ticket.assignee or agent
    ticket.complaint_level, ticket.compensation = complaint_level, compensation
    ticket.category = category or ticket.category
    staff.audit(agent, "resolve", uow, "ticket", ticket.reference, complaint_level=complaint_level,
                compensation=compensation, category=ticket.category, note=note)
    return ticket


def assign_ticket(ticket_id: int, assignee: str, actor: str, uow: UnitOfWork, *, reassign: bool = False
                  ) -> models.Ticket:
    """Give the ticket to ``assignee``, a staff user who works tickets.

    The agent who holds it may transfer it; a ticket another agent holds moves only with
    ``reassign`` (a supervisor's right, checked by the caller), else ``TicketConflict``."""
    ticket = _ticket(ticket_id, uow, for_update=True)
    if ticket.status in (models.RESOLVED, models.CANCELLED) or \
            ticket.status == models.CLAIMED and ticket.assignee not in (actor, assignee) and not reassign:
        raise TicketConflict(ticket)
    to = uow.session.scalar(select(models.StaffUser).filter_by(name=assignee, active=True))
    if to is None or to.role not in models.TICKET_ROLES:
        raise ValueError(f"{assignee!r} is not a staff member who works tickets")
    if ticket.assignee != assignee:
        action = "transfer" if ticket.assignee == actor else "assign"
        staff.audit(actor, action, uow, "ticket", ticket.reference, assignee=assignee, previous=ticket.assignee)
        ticket.status, ticket.assignee = models.CLAIMED, assignee
    return ticket


def add_note(ticket_id: int, author: str, text: str, uow: UnitOfWork) -> models.TicketNote:
    """An internal note on the ticket, for staff only."""
    text = text.strip()
    if not text:
        raise ValueError("a note needs some text")
    ticket = _ticket(ticket_id, uow)
    note = models.TicketNote(ticket_id=ticket.id, author=author, text=text)
    uow.session.add(note)
    uow.flush()
    staff.audit(author, "note", uow, "ticket", ticket.reference, note_id=note.id)
    return note


def reply_to_ticket(ticket_id: int, agent: str, text: str, uow: UnitOfWork) -> int:
    """An agent's reply to the customer: the agent claims the ticket, its first response time is
    kept, and the message waits in the outbox (QUEUED); returns its id. The caller commits, then
    has it sent (``workers.jobs.send_soon``). A ticket made from a Weibo or Twitter mention is
    answered in public, under that mention (``reply_to_mention``)."""
    if not text.strip():
        raise ValueError("a reply needs some text")
    ticket = claim_ticket(ticket_id, agent, uow)
    mention = listening.mention_of(uow, ticket_id=ticket.id)
    if mention is not None:
        message_id = reply_to_mention(mention, agent, text, uow)
    elif ticket.conversation_id is None:
        raise LookupError(f"ticket {ticket.reference} has no conversation to reply in")
    else:
        ticket.first_response_at = ticket.first_response_at or utcnow()
        message_id = record_outbound(ticket.conversation_id, text, uow, author=f"agent:{agent}")
    staff.audit(agent, "reply", uow, "ticket", ticket.reference, message_id=message_id)
    return message_id


def reply_to_mention(mention: models.Mention, actor: str, text: str, uow: UnitOfWork) -> int:
    """A public reply under a Weibo or Twitter mention (a comment reply, a reply tweet), written by
    ``actor``: stored as an outbound message in the author's conversation on that channel, with
    the mention it answers, and sent from the outbox like any other; returns its id. It is the
    first response of the ticket the mention became, if any. Audited."""
    text = text.strip()
    if not text:
        raise ValueError("a reply needs some text")
    if not mention.reply_ref or not mention.author_id or mention.deleted:
        raise ValueError(f"{mention.channel} mention {mention.external_id} cannot be answered: "
                         "it was deleted or names no post to reply under")
    identity = uow.session.scalar(select(ChannelIdentity).filter_by(
        channel=mention.channel, account=mention.account, external_id=mention.author_id))
    if identity is None:
        raise ValueError(f"the author of mention {mention.id} is not a known customer")
    conversation_id = open_conversation(identity, uow)
    message_id = record_outbound(conversation_id, text, uow, author=f"agent:{actor}", customer_id=identity.customer_id,
                                 attributes={models.PUBLIC_REPLY: mention.reply_ref, "mention_id": mention.id})
    if mention.ticket_id is not None:
        ticket = _ticket(mention.ticket_id, uow)
        ticket.first_response_at = ticket.first_response_at or utcnow()
        ticket.conversation_id = ticket.conversation_id or conversation_id
    staff.audit(actor, "mention.reply", uow, "mention", mention.id, message_id=message_id)
    return message_id


def open_conversation(identity: ChannelIdentity, uow: UnitOfWork) -> int:
    """The identity's open conversation, begun now if it has none."""
    found = uow.execute(select(Conversation.id).filter_by(identity_id=identity.id, status="open")
                        .order_by(Conversation.id.desc()).limit(1)).scalar()
    if found is not None:
        return found
    return uow.execute(INSERT_CONVERSATION, {
        "customer_id": identity.customer_id, "identity_id": identity.id, "channel": identity.channel,
        "account": identity.account, "status": "open", "opened_at": utcnow()}).scalar()


# The conversation-state key by which the store tells the bot that a resolved ticket waits for the
# customer's rating: the bot's next reading of the conversation starts its CSAT flow from it.
RATING_TICKET = "rating_ticket"


def ask_for_rating(ticket: models.Ticket, content: BotContent, uow: UnitOfWork, state_ttl: int,
                   lang: str | None = None) -> int | None:
    """After a ticket is resolved, the bot takes its conversation back and asks the customer, in
    their language (``lang``, else the conversation's), for a 1-5 rating. The question waits in
    the outbox; returns its id (None when the ticket has no private conversation: one made from
    a public mention is not asked in public). The caller commits, then has it sent.

    The conversation's state keeps the question for ``limits.csat_window_seconds`` (a day by
    default), not just the usual conversation time: customers answer when they next look."""
    if ticket.conversation_id is None or ticket.source == "mention":
        return None
    ticket.csat_asked_at = utcnow()
    state = conversation_state(ticket.conversation_id, uow)
    state[RATING_TICKET] = ticket.id
    window = int(content.rules.limits.get("csat_window_seconds", 86_400))
    save_conversation_state(ticket.conversation_id, state, uow, max(state_ttl, window))
    question = content.say("csat_ask", lang or state.get("lang", "zh"), reference=ticket.reference)
    return record_outbound(ticket.conversation_id, question, uow)


def customer_text(conversation_id: int, uow: UnitOfWork) -> str:
    """The customer's last text message in the conversation ("" when there is none)."""
    return uow.session.scalar(select(Message.text).filter_by(
        conversation_id=conversation_id, direction="in", kind=base.TEXT).order_by(Message.id.desc()).limit(1)) or ""


def record_csat(ticket_id: int, score: int | None, uow: UnitOfWork, comment: str | None = None) -> models.Ticket:
    """The customer's rating (1-5), and any comment; ``score`` None keeps the score given before."""
    ticket = _ticket(ticket_id, uow)
    if score is None:
        score = ticket.csat_score
    if score is None or not 1 <= score <= 5:
        raise ValueError("a satisfaction score is 1 to 5")
    ticket.csat_score = score
    if comment is not None:
        ticket.csat_comment = comment
    return ticket


def add_to_ticket(ticket_id: int, uow: UnitOfWork, *, order_no: str | None = None, detail: str | None = None
                  ) -> models.Ticket:
    """What the customer adds after the ticket was opened: its order number, or more detail."""
    ticket = _ticket(ticket_id, uow)
    if order_no:
        ticket.order_no = order_no
    if detail:
        ticket.description = f"{ticket.description}\n{detail}" if ticket.description else detail
    return ticket


def cancel_handoff(conversation_id: int, uow: UnitOfWork) -> models.Ticket | None:
    """The customer calls off a waiting hand-off: its ticket is CANCELLED and the bot answers
    again. A ticket an agent has claimed stays: the agent is already on it."""
    ticket = uow.session.scalar(select(models.Ticket).filter_by(
        conversation_id=conversation_id, source="handoff", status=models.OPEN).order_by(models.Ticket.id.desc()))
    if ticket is not None:
        ticket.status, ticket.resolved_at = models.CANCELLED, utcnow()
    return ticket


def waiting_handoff(conversation_id: int, uow: UnitOfWork) -> models.Ticket | None:
    """The hand-off ticket an agent owns or will own (open or claimed), newest first."""
    return open_ticket_in(conversation_id, uow, source="handoff")


def open_ticket_in(conversation_id: int, uow: UnitOfWork, source: str | None = None,
                   for_update: bool = False) -> models.Ticket | None:
    """The newest ticket of the conversation still with staff (open or claimed), of ``source``
    or whatever its source: a customer who asks for a person while one is open is added to it,
    not given another. ``for_update``: locked for a change (the analysis raising its priority)."""
    statement = select(models.Ticket).filter(models.Ticket.conversation_id == conversation_id,
                                             models.Ticket.status.in_((models.OPEN, models.CLAIMED)))
    if source is not None:
        statement = statement.filter(models.Ticket.source == source)
    statement = statement.order_by(models.Ticket.id.desc()).limit(1)
    return uow.session.scalar(statement.with_for_update() if for_update else statement)


def _ticket(ticket_id: int, uow: UnitOfWork, for_update: bool = False) -> models.Ticket:
    ticket = uow.session.get(models.Ticket, ticket_id, with_for_update=for_update)
    if ticket is None:
        raise LookupError(f"ticket {ticket_id} does not exist")
    return ticket


def capture_lead_in_conversation(conversation_id: int, uow: UnitOfWork, *, name: str, phone: str, interest: str,
                                 keyword: str | None = None) -> tuple[models.Lead, bool]:
    """``capture_lead`` for the conversation's customer, with the conversation's channel as the
    lead's source and the QR scene the customer subscribed by as its campaign."""
    conversation = uow.conversations.get(conversation_id)
    if conversation is None:
        raise LookupError(f"conversation {conversation_id} does not exist")
    identity = uow.identities.get(conversation.identity_id)
    return capture_lead(conversation.customer_id, uow, name=name, phone=phone, interest=interest,
                        source_channel=conversation.channel, keyword=keyword, campaign=identity.subscribe_scene)


def capture_lead(customer_id: int, uow: UnitOfWork, *, name: str, phone: str, interest: str, source_channel: str,
                 keyword: str | None = None, campaign: str | None = None) -> tuple[models.Lead, bool]:
    """Record a lead; returns it and whether it is new.

    The same customer's open lead with this phone is updated instead (dedupe). Another
    customer's open lead with the same phone is not touched: a phone alone does not prove one
    person, so the new lead is kept for this customer and linked to that one
    (``same_phone_as_id``), for staff to merge after checking."""
    open_leads = list(uow.session.scalars(select(models.Lead).filter(
        models.Lead.phone == phone, models.Lead.status.notin_(("converted", "lost"))).order_by(models.Lead.id)))
    lead = next((row for row in open_leads if row.customer_id == customer_id), None)
    if lead is not None:
        lead.interest = f"{lead.interest}\n{interest}" if interest not in lead.interest else lead.interest
        lead.name = name or lead.name
        lead.updated_at = utcnow()
        return lead, False
    lead = models.Lead(customer_id=customer_id, name=name, phone=phone, interest=interest,
                       source_channel=source_channel, keyword=keyword, campaign=campaign,
                       same_phone_as_id=open_leads[0].id if open_leads else None)
    uow.session.add(lead)
    uow.flush()
    return lead, True


def set_lead_status(lead_id: int, status: str, uow: UnitOfWork, actor: str = "system") -> models.Lead:
    """Move a lead along its pipeline; audited."""
    if status not in models.LEAD_STATUSES:
        raise ValueError(f"lead status must be one of {', '.join(models.LEAD_STATUSES)}")
    lead = uow.session.get(models.Lead, lead_id)
    if lead is None:
        raise LookupError(f"lead {lead_id} does not exist")
    if status == "converted" and lead.status != "converted":
        lead.converted_at = utcnow()
    lead.status, lead.updated_at = status, utcnow()
    staff.audit(actor, "lead.status", uow, "lead", lead_id, status=status)
    return lead


def assign_lead(lead_id: int, assignee: str | None, actor: str, uow: UnitOfWork) -> models.Lead:
    """Give the lead to ``assignee``, an active staff user who works leads (None: to nobody);
    audited."""
    lead = uow.session.get(models.Lead, lead_id)
    if lead is None:
        raise LookupError(f"lead {lead_id} does not exist")
    if assignee is not None:
        to = uow.session.scalar(select(models.StaffUser).filter_by(name=assignee, active=True))
        if to is None or to.role not in models.LEAD_ROLES:
            raise ValueError(f"{assignee!r} is not a staff member who works leads")
    if lead.assignee != assignee:
        staff.audit(actor, "lead.assign", uow, "lead", lead_id, assignee=assignee, previous=lead.assignee)
        lead.assignee, lead.updated_at = assignee, utcnow()
    return lead
