"""Service functions: the one way views, bot flows and jobs change the store.

They take a unit of work and never commit; the caller decides the transaction.
"""
from __future__ import annotations

from dataclasses import dataclass

from channels import base
from channels.base import InboundMessage
from crm_store import models
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
