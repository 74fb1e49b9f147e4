"""The CRM's tables (SQLAlchemy 2.0 declarative). One customer, many channel identities."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (JSON, Boolean, Date, DateTime, ForeignKey, ForeignKeyConstraint, Index, String, Text,
                        UniqueConstraint, or_, text)
from sqlalchemy.ext.hybrid import hybrid_method
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC time: SQLite hands back naive datetimes; the store keeps UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    """One person, whatever channels they reach the brand on."""

    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(20), index=True)  # verified by a one-time code
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    identities: Mapped[list[ChannelIdentity]] = relationship(back_populates="customer")


class ChannelIdentity(Base):
    """A customer's id on one channel account (a WeChat openid under one Official Account ...)."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "account", "external_id", name="uq_identity_channel_account_external"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    account: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    subscribed: Mapped[bool] = mapped_column(Boolean, default=False)
    subscribe_scene: Mapped[str | None] = mapped_column(String(64))  # QR scene of a subscribe-by-scan
    # The bot's state of the conversation on this identity (active flow, misses), read as empty
    # once expired. It sits on the row the webhook locks (FOR UPDATE), so a message that waited
    # for another message of the same customer reads the state that one left, not an older copy.
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    state_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    customer: Mapped[Customer] = relationship(back_populates="identities")


class Conversation(Base):
    """The thread between the brand and one channel identity."""

    __tablename__ = "conversations"
    # The key messages refer to: a message's customer is its conversation's customer.
    __table_args__ = (UniqueConstraint("id", "customer_id", name="uq_conversations_id_customer_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("channel_identities.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    account: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Outbound delivery states. PASSIVE: returned in the webhook response. QUEUED: waits for the send
# job (until ``next_attempt_at`` after a failed try); SENDING: claimed by one worker until its
# lease expires; then SENT, or, shown to the agent: FAILED (gave up after retries), UNREACHABLE
# (WeChat 45015: the 48-hour window has closed), QUOTA_EXCEEDED (45047), UNKNOWN (the platform
# may or may not have it: never sent again blindly).
PASSIVE, QUEUED, SENDING, SENT = "passive", "queued", "sending", "sent"
FAILED, UNREACHABLE, QUOTA_EXCEEDED, UNKNOWN = "failed", "unreachable", "quota_exceeded", "unknown"
# The attribute of an outbound message that makes it a public reply: the ``Mention.reply_ref`` of
# the post or comment it answers (``OutboundMessage.reply_to``).
PUBLIC_REPLY = "reply_to"


class Message(Base):
    """One inbound or outbound message; ``dedupe_key`` makes platform retries land once."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        # Partial indexes, holding only the rows looked up through them (the outbox; replies), so
        # the inbound message and its passive reply, which is most of what is written, skip them.
        Index("ix_messages_queued", "id", sqlite_where=text("delivery = 'queued'"),
              postgresql_where=text("delivery = 'queued'")),
        Index("ix_messages_sending", "id", sqlite_where=text("delivery = 'sending'"),
              postgresql_where=text("delivery = 'sending'")),
        Index("ix_messages_reply_to_id", "reply_to_id", sqlite_where=text("reply_to_id IS NOT NULL"),
              postgresql_where=text("reply_to_id IS NOT NULL")),
        # Only inbound messages carry a platform dedupe key; outbound rows stay out of the index.
        Index("uq_messages_dedupe_key", "dedupe_key", unique=True, sqlite_where=text("dedupe_key IS NOT NULL"),
              postgresql_where=text("dedupe_key IS NOT NULL")),
        Index("uq_messages_push_key", "push_key", unique=True, sqlite_where=text("push_key IS NOT NULL"),
              postgresql_where=text("push_key IS NOT NULL")),
        # One reference checks both the conversation and that the message's customer is the
        # conversation's, and a merge that moves a conversation moves its messages with it. The
        # customer is then reached through the conversation: no index or key of its own to keep.
        ForeignKeyConstraint(["conversation_id", "customer_id"], ["conversations.id", "conversations.customer_id"],
                             name="fk_messages_conversation_customer", onupdate="CASCADE"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column()
    customer_id: Mapped[int] = mapped_column()
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    kind: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text, default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    raw: Mapped[str] = mapped_column(Text, default="")
    external_id: Mapped[str | None] = mapped_column(String(64))
    dedupe_key: Mapped[str | None] = mapped_column(String(255))
    # The signed request that carried it, where the signature leaves the body out (WeChat's plain
    # mode): unique, so that request can never bring another payload (InboundMessage.push_key).
    push_key: Mapped[str | None] = mapped_column(String(255))
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    author: Mapped[str] = mapped_column(String(64), default="customer")  # customer | bot | agent:<id>
    delivery: Mapped[str | None] = mapped_column(String(16))
    delivery_error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # a retry's backoff
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # while SENDING
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Member(Base):
    """A membership card. Its points balance is derived from the ledger, never stored."""

    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), unique=True)
    card_no: Mapped[str] = mapped_column(String(32), unique=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str | None] = mapped_column(String(120))
    bound_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Kinds of points entries: earn and refund add, redeem and expire subtract, adjust is either way.
POINTS_KINDS = ("earn", "redeem", "adjust", "expire", "refund")


class PointsEntry(Base):
    """One line of the append-only points ledger; ``idempotency_key`` makes a retry land once."""

    __tablename__ = "points_entries"
    __table_args__ = (Index("ix_points_entries_member_id_id", "member_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(10))
    points: Mapped[int]  # signed: what this entry adds to the balance
    reason: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Ticket states: OPEN (queued for an agent) -> CLAIMED (an agent owns it) -> RESOLVED; a hand-off
# the customer called off before an agent took it is CANCELLED.
OPEN, CLAIMED, RESOLVED, CANCELLED = "open", "claimed", "resolved", "cancelled"


class Ticket(Base):
    """A complaint or a hand-off in the escalation queue, with its SLA and the customer's rating."""

    __tablename__ = "tickets"
    # The KPIs read a period's tickets by when they were opened and when their rating was asked.
    __table_args__ = (Index("ix_tickets_created_at", "created_at"), Index("ix_tickets_csat_asked_at", "csat_asked_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)  # T20261123-0042
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # complaint | handoff | mention
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(4))  # P1 (most urgent) .. P4
    status: Mapped[str] = mapped_column(String(16), default=OPEN, index=True)
    order_no: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    assignee: Mapped[str | None] = mapped_column(String(64))
    first_response_due: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolution_due: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    complaint_level: Mapped[str | None] = mapped_column(String(16))
    compensation: Mapped[str | None] = mapped_column(String(200))
    csat_asked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Kept by the SLA job (workers/sla.py): near | breached while open; the due time it missed.
    sla_state: Mapped[str | None] = mapped_column(String(10))
    sla_breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # WeChat's 48-hour customer-service window: when it closes for this open ticket's customer (the
    # last thing they wrote + 48 h), kept by the SLA job; None on other channels.
    window_closes_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    csat_score: Mapped[int | None]
    csat_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Any write to the ticket (ORM or Core UPDATE) moves it, so the KPI rollups know which days to
    # recompute (``crm_store.kpis.stale_ticket_days``). A lambda: ``utcnow`` is looked up when called.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: utcnow(),
                                                 onupdate=lambda: utcnow(), index=True)

    @hybrid_method
    def breached(self, now: datetime) -> bool:
        """Past its SLA while still open: no first response by its due time, or not resolved by
        the resolution's. The same rule in Python (a loaded ticket) and in SQL (a filter)."""
        if self.status not in (OPEN, CLAIMED):
            return False
        return (self.first_response_at is None and as_utc(self.first_response_due) < now) \
            or as_utc(self.resolution_due) < now

    @breached.expression
    def breached(cls, now: datetime):  # type: ignore[no-untyped-def]
        return cls.status.in_((OPEN, CLAIMED)) & or_(
            cls.first_response_at.is_(None) & (cls.first_response_due < now), cls.resolution_due < now)

    def sla(self, now: datetime) -> str | None:
        """``breached``; ``near`` when less than ``NEAR_BREACH`` of the time to the due time that
        matters now (the first response's until it is made, then the resolution's) is left;
        else None. Closed tickets have none."""
        if self.status not in (OPEN, CLAIMED):
            return None
        if self.breached(now):
            return "breached"
        due = as_utc(self.first_response_due if self.first_response_at is None else self.resolution_due)
        return "near" if due - now <= (due - as_utc(self.created_at)) * NEAR_BREACH else None

    def window_left(self, now: datetime) -> timedelta | None:
        """Time left in WeChat's 48-hour window (``window_closes_at``); None off WeChat."""
        return None if self.window_closes_at is None else max(as_utc(self.window_closes_at) - now, timedelta(0))

    def missed(self, now: datetime) -> datetime | None:
        """The first due time this ticket missed (``missed_due``)."""
        return missed_due(self.status, self.first_response_at, self.resolved_at, self.first_response_due,
                          self.resolution_due, now)


NEAR_BREACH = 0.25  # the share of a due time's window left when a ticket is flagged as near breach


def missed_due(status: str, first_response_at: datetime | None, resolved_at: datetime | None,
               first_response_due: datetime, resolution_due: datetime, now: datetime) -> datetime | None:
    """The first due time a ticket missed (its first response's, or its resolution's), as of
    ``now``; None when it kept both so far, or the customer cancelled it."""
    if status == CANCELLED:
        return None
    closed = as_utc(resolved_at) if resolved_at else now
    answered = as_utc(first_response_at) if first_response_at else closed
    if answered > as_utc(first_response_due):
        return as_utc(first_response_due)
    return as_utc(resolution_due) if closed > as_utc(resolution_due) else None


class TicketNote(Base):
    """An internal note on a ticket: staff only, never sent to the customer."""

    __tablename__ = "ticket_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Lead pipeline: new -> contacted -> qualified -> converted | lost.
LEAD_STATUSES = ("new", "contacted", "qualified", "converted", "lost")


class Lead(Base):
    """A prospect's contact and interest, with where it came from; one open lead per phone."""

    __tablename__ = "leads"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str] = mapped_column(String(20), index=True)
    interest: Mapped[str] = mapped_column(Text)
    source_channel: Mapped[str] = mapped_column(String(20))
    keyword: Mapped[str | None] = mapped_column(String(64))
    campaign: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="new")
    assignee: Mapped[str | None] = mapped_column(String(64))  # the staff user working it
    converted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # last made a customer
    # Another customer's open lead with the same phone: kept apart and linked, never merged into it.
    same_phone_as_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CustomerMerge(Base):
    """Identities moved from one customer record into another; kept so the merge can be undone."""

    __tablename__ = "customer_merges"
    id: Mapped[int] = mapped_column(primary_key=True)
    from_customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    into_customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    moved: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"identities": [...], "leads": [...], ...}
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reverted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReferenceCounter(Base):
    """The last number handed out per prefix and day, for references like T20261123-0042."""

    __tablename__ = "reference_counters"
    prefix_day: Mapped[str] = mapped_column(String(16), primary_key=True)  # "T20261123"
    last: Mapped[int] = mapped_column(default=0)


# Staff roles (DESIGN.md): agents work tickets; supervisors also reassign and read the team's audit
# log and service KPIs; marketers see mentions, leads and fan KPIs; admins manage users and tokens.
AGENT, SUPERVISOR, MARKETER, ADMIN = "agent", "supervisor", "marketer", "admin"
ROLES = (AGENT, SUPERVISOR, MARKETER, ADMIN)
TICKET_ROLES = (AGENT, SUPERVISOR, ADMIN)  # marketers do not work tickets
REASSIGN_ROLES = (SUPERVISOR, ADMIN)  # may move a ticket another agent holds
LEAD_ROLES = (MARKETER, SUPERVISOR, ADMIN)  # see and work leads, mentions and watch terms
FULL_PHONE_ROLES = (SUPERVISOR, MARKETER, ADMIN)  # agents see phones masked: they reach customers on their channel


class StaffUser(Base):
    """A member of the brand's staff, who signs in to the console or calls the API."""

    __tablename__ = "staff_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))  # scrypt, salted (werkzeug.security)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    """A bearer token for ``/api/v1/``. Only its SHA-256 is kept; the token is shown once."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One staff action: who did what to which record, and when. Written in the action's own
    transaction, so an action and its audit line land or fail together."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_type", "target_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))  # a staff user's name, or "system"
    action: Mapped[str] = mapped_column(String(32))  # login, claim, assign, reply, resolve, token.create ...
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


# Listening (Weibo, Twitter): what a poll stores, how far each source has been read, and how it went.
MENTION_SOURCES = ("statuses", "comments", "mentions")  # plus "search:<term>" and "followers"
POLL_OUTCOMES = ("ok", "partial", "rate_limited", "auth_expired", "failed")
WATCH_TERM_KINDS = ("brand", "product", "competitor", "campaign")


class Mention(Base):
    """A public post or comment about the brand (``channels.base.Mention``), stored once per
    (channel, account, external_id), with what the analysis made of it and the lead or ticket it
    became. The author is a customer through a ``ChannelIdentity`` (None: the platform sent none)."""

    __tablename__ = "mentions"
    __table_args__ = (
        UniqueConstraint("channel", "account", "external_id", name="uq_mentions_channel_account_external"),
        Index("ix_mentions_channel_created_at", "channel", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    account: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(64))  # exact digits: platform ids pass 2**53
    kind: Mapped[str] = mapped_column(String(16))  # post | comment | reply
    text: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[str | None] = mapped_column(String(64))
    author_screen_name: Mapped[str | None] = mapped_column(String(120))
    author_followers: Mapped[int | None] = mapped_column()
    author_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    reposts: Mapped[int] = mapped_column(default=0)
    comments: Mapped[int] = mapped_column(default=0)
    likes: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lang: Mapped[str | None] = mapped_column(String(8))
    sentiment: Mapped[str | None] = mapped_column(String(3))  # pos | neu | neg
    sentiment_score: Mapped[float | None] = mapped_column()  # 0 (negative) .. 1 (positive)
    intent: Mapped[str | None] = mapped_column(String(20))
    intent_confidence: Mapped[float | None] = mapped_column()
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    watch_terms: Mapped[list[str]] = mapped_column(JSON, default=list)  # the active terms it matched
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    reply_ref: Mapped[str | None] = mapped_column(String(140))  # what OutboundMessage.reply_to takes
    in_reply_to: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(String(255))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[str] = mapped_column(Text, default="")
    # The lead or ticket the rules (or a marketer) made of it; the lead's or ticket's mention is
    # found through these indexed columns, so the link is read both ways from one place.
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)


class WatchTerm(Base):
    """A word marketers track: the brand, a product, a competitor, a campaign."""

    __tablename__ = "watch_terms"
    id: Mapped[int] = mapped_column(primary_key=True)
    term: Mapped[str] = mapped_column(String(64), unique=True)  # normalized: lower case, trimmed
    kind: Mapped[str] = mapped_column(String(16))  # brand | product | competitor | campaign
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ListeningCursor(Base):
    """How far one source of one account has been read: the newest id of the last poll that read
    every page to the end. A poll that stopped part way leaves it where it was."""

    __tablename__ = "listening_cursors"
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(80), primary_key=True)  # statuses | comments | mentions | search:<term>
    since_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PollRun(Base):
    """One poll of one source: what it fetched, what was new, what went wrong, where the cursor
    was before and after. The console shows these."""

    __tablename__ = "poll_runs"
    __table_args__ = (Index("ix_poll_runs_source", "channel", "account", "source", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    account: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pages: Mapped[int] = mapped_column(default=0)
    fetched: Mapped[int] = mapped_column(default=0)
    new: Mapped[int] = mapped_column(default=0)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    rate_limited_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cursor_before: Mapped[str | None] = mapped_column(String(64))
    cursor_after: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # ok | partial | rate_limited | auth_expired | failed


class FollowerSnapshot(Base):
    """An account's followers on one of the brand's days (the last reading of the day wins)."""

    __tablename__ = "follower_snapshots"
    __table_args__ = (UniqueConstraint("channel", "account", "day", name="uq_follower_snapshots_day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    account: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    followers: Mapped[int] = mapped_column()
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KpiDay(Base):
    """The message-derived service KPIs of one brand day, channel and account (``crm_store.kpis``):
    kept by the rollup job so that no KPI read scans messages. Ticket, CSAT, lead and mention
    KPIs are read from their own (indexed) rows."""

    __tablename__ = "kpi_days"
    __table_args__ = (UniqueConstraint("day", "channel", "account", name="uq_kpi_days_day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(20))
    account: Mapped[str] = mapped_column(String(64))
    needing: Mapped[int] = mapped_column(default=0)  # customer messages that needed an answer
    answered: Mapped[int] = mapped_column(default=0)  # ... answered within target
    conversation_days: Mapped[int] = mapped_column(default=0)  # conversations the customer wrote in that day
    self_served: Mapped[int] = mapped_column(default=0)  # ... with no ticket opened that day
    latency: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)  # bot latency ms -> passive replies
    through_message_id: Mapped[int] = mapped_column(default=0)  # the newest message when it was computed
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KpiTicketDay(Base):
    """The ticket-derived service KPIs of one brand day, channel, account and agent (``agent`` ""
    for tickets no one holds): tickets opened that day and rating questions asked that day, kept by
    the rollup job so that a month's dashboard does not sum tens of thousands of tickets."""

    __tablename__ = "kpi_ticket_days"
    __table_args__ = (UniqueConstraint("day", "channel", "account", "agent", name="uq_kpi_ticket_days_day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(20))
    account: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    counted: Mapped[int] = mapped_column(default=0)  # tickets opened that day, less the cancelled
    resolved: Mapped[int] = mapped_column(default=0)  # ... of them resolved
    breaches: Mapped[int] = mapped_column(default=0)  # ... of them that missed a due time
    response_times: Mapped[list[int]] = mapped_column(JSON, default=list)  # first response ms per ticket, in order
    csat_asked: Mapped[int] = mapped_column(default=0)  # rating questions asked that day
    csat_answered: Mapped[int] = mapped_column(default=0)
    csat_satisfied: Mapped[int] = mapped_column(default=0)  # answers of 4 or 5
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MessageAnalysis(Base):
    """What the analysis job made of an inbound text message (``workers.analysis``): sentiment,
    intent, keywords and the watch terms it names, and how long after the message it was done."""

    __tablename__ = "message_analyses"
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    lang: Mapped[str | None] = mapped_column(String(8))
    sentiment: Mapped[str] = mapped_column(String(3))  # pos | neu | neg
    sentiment_score: Mapped[float] = mapped_column()  # 0 (negative) .. 1 (positive)
    intent: Mapped[str] = mapped_column(String(20))
    intent_confidence: Mapped[float] = mapped_column()
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    watch_terms: Mapped[list[str]] = mapped_column(JSON, default=list)
    escalation: Mapped[str | None] = mapped_column(String(20))  # ticket_opened | priority_raised
    analyzed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lag_ms: Mapped[int] = mapped_column(default=0)  # analyzed_at - the message's created_at
