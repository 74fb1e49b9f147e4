"""The outbox: outbound messages waiting to be sent through a platform's send API.

A send is done in three steps, so that no transaction is open while the platform is called:
``claim_send`` (commit), the call, ``record_send`` (a new transaction). A claim holds the message
for one worker until its lease expires. A claim whose outcome was never recorded (the worker
died, or the store failed after the call) may have reached the customer: ``expire_leases`` marks
it UNKNOWN for an agent to look at, and it is never sent again by itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, literal_column, or_, select, update

from channels.base import OutboundMessage
from crm_store import models
from crm_store.models import ChannelIdentity, Conversation, Message, utcnow
from crm_store.uow import UnitOfWork

LEASE = timedelta(seconds=120)  # longer than a send job may run (60 s) plus the HTTP timeout
BACKOFF = (5, 30, 120, 600)  # seconds before the 2nd, 3rd, 4th and 5th try
MAX_ATTEMPTS = len(BACKOFF) + 1
RETRY = "retry"  # an outcome: this try failed and nothing was sent; try again after the backoff

_messages = Message.__table__
# Literals, not bound parameters: they match the partial indexes' WHERE, so the indexes are used.
_QUEUED, _SENDING = literal_column(f"'{models.QUEUED}'"), literal_column(f"'{models.SENDING}'")
_NOW = bindparam("now", type_=_messages.c.lease_expires_at.type)
_DUE = (_messages.c.delivery == _QUEUED) & or_(_messages.c.next_attempt_at.is_(None),
                                               _messages.c.next_attempt_at <= _NOW)
CLAIM = update(_messages).where(_messages.c.id == bindparam("message_id"), _DUE).values(
    delivery=models.SENDING, attempts=_messages.c.attempts + 1, next_attempt_at=None,
    lease_expires_at=bindparam("lease_expires_at")).returning(_messages.c.attempts, _messages.c.text,
                                                              _messages.c.conversation_id, _messages.c.attributes)
RECIPIENT = select(Conversation.channel, Conversation.account, ChannelIdentity.external_id).join(
    ChannelIdentity, ChannelIdentity.id == Conversation.identity_id).where(
    Conversation.id == bindparam("conversation_id"))
# The claim's own try only: a newer claim of the message is not overwritten. UNKNOWN too, for an
# outcome that arrives after its lease ran out: now it is known.
RECORD = update(_messages).where(
    _messages.c.id == bindparam("message_id"), _messages.c.attempts == bindparam("attempt"),
    _messages.c.delivery.in_((models.SENDING, models.UNKNOWN))).values(
    delivery=bindparam("state"), delivery_error=bindparam("error"), next_attempt_at=bindparam("retry_at"),
    lease_expires_at=None)
EXPIRE = update(_messages).where(_messages.c.delivery == _SENDING, _messages.c.lease_expires_at < _NOW).values(
    delivery=models.UNKNOWN, lease_expires_at=None,
    delivery_error="the send was not confirmed in time: the customer may or may not have it").returning(
    _messages.c.id)
DUE = select(_messages.c.id).where(_DUE).order_by(_messages.c.id).limit(bindparam("limit"))


@dataclass(frozen=True)
class Claim:
    """One worker's try at sending one message."""

    message_id: int
    attempt: int  # 1 for the first try
    outbound: OutboundMessage


@dataclass(frozen=True)
class Outcome:
    """What was recorded: the message's state, and when a retry is due (QUEUED only)."""

    state: str
    retry_at: datetime | None = None


def claim_send(message_id: int, uow: UnitOfWork, now: datetime | None = None) -> Claim | None:
    """Claim a queued message whose backoff is over; None when it is not there to send (sent,
    claimed by another worker, given up, or waiting out its backoff). The caller commits before
    it calls the platform."""
    now = now or utcnow()
    claimed = uow.execute(CLAIM, {"message_id": message_id, "now": now,
                                  "lease_expires_at": now + LEASE}).first()
    if claimed is None:
        return None
    attempt, text, conversation_id, attributes = claimed
    channel, account, external_id = uow.execute(RECIPIENT, {"conversation_id": conversation_id}).one()
    # One key for the message across its tries: a platform that takes one keeps a retry from
    # showing twice.
    return Claim(message_id, attempt, OutboundMessage(channel, account, external_id, text,
                                                      idempotency_key=f"message-{message_id}",
                                                      reply_to=(attributes or {}).get(models.PUBLIC_REPLY)))


def record_send(claim: Claim, state: str, uow: UnitOfWork, error: str | None = None,
                now: datetime | None = None) -> Outcome:
    """Record how the claimed try went. ``state`` is SENT, UNREACHABLE, QUOTA_EXCEEDED, UNKNOWN, or
    ``RETRY`` for a try that failed before the platform took anything: the message is QUEUED again
    after its backoff, or FAILED after the last try."""
    retry_at = None
    if state == RETRY:
        if claim.attempt >= MAX_ATTEMPTS:
            state = models.FAILED
        else:
            state, retry_at = models.QUEUED, (now or utcnow()) + timedelta(seconds=BACKOFF[claim.attempt - 1])
    uow.execute(RECORD, {"message_id": claim.message_id, "attempt": claim.attempt, "state": state,
                         "error": error, "retry_at": retry_at})
    return Outcome(state, retry_at)


def expire_leases(uow: UnitOfWork, now: datetime | None = None) -> list[int]:
    """Mark UNKNOWN every claim whose lease ran out without an outcome; their ids."""
    return list(uow.execute(EXPIRE, {"now": now or utcnow()}).scalars())


def due_sends(uow: UnitOfWork, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Queued messages whose backoff is over, oldest first: what the send jobs should take now."""
    return list(uow.execute(DUE, {"now": now or utcnow(), "limit": limit}).scalars())
