"""rq jobs. Module-level functions that take ids, never ORM objects.

The worker process sets ``RUNTIME`` before it forks, so each job reuses the loaded bot and
settings instead of building them again.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Mapping

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry

from channels import twitter, webchat, weibo
from channels.base import AuthExpired, QuotaExceeded, RecipientUnreachable, SendFailed, SendOutcomeUnknown
from config import ConfigError
from crm_store import models, outbox, services
from crm_store.models import Ticket
from crm_store.uow import UnitOfWork
from nlp.tokenize import written_language
from workers import metrics
from workers.runtime import Runtime

log = logging.getLogger(__name__)

RUNTIME: Runtime | None = None

# Queues by purpose. A worker takes them in this order, so a reply never waits behind a poll;
# `crmbot worker --queues` runs workers for some of them only (README, "Scaling out").
REALTIME = "realtime"  # outbound replies, and the outbox drain that requeues them
ANALYSIS = "analysis"  # sentiment, keywords, intent of what customers write
POLLING = "polling"  # Weibo and Twitter polls
REPORTS = "reports"  # follower snapshots, KPI rollups
QUEUES = (REALTIME, ANALYSIS, POLLING, REPORTS)

SEND_TIMEOUT = 60  # seconds; the outbox's lease (crm_store.outbox.LEASE) is longer
# rq's retry of a send job cannot send twice: only the run that claims the message in the store
# (``outbox.claim_send``) calls the platform, and a run that claimed and then failed (or was
# killed) leaves the message claimed, so every later run of the job is "skipped" and the lease
# turns it UNKNOWN for an agent. What rq's retry adds is a second chance for a run that failed
# before its claim (the store was unreachable): nothing was sent then. The platform-side retries
# and their backoff are the outbox's (``outbox.BACKOFF``), counted in the store, not rq's.
SEND_RETRY = Retry(max=3, interval=[5, 30, 120])


def runtime() -> Runtime:
    if RUNTIME is None:
        raise RuntimeError("workers.jobs.RUNTIME is not set: start jobs with `crmbot worker`")
    return RUNTIME


def enqueue_send(redis: Redis, message_id: int, at: datetime | None = None) -> None:
    """Queue the send of a stored outbound message (the row itself is the durable outbox), now or
    at ``at`` (rq's scheduler, which runs in every worker)."""
    queue = Queue(REALTIME, connection=redis)
    if at is None:
        queue.enqueue(send_outbound, message_id, job_timeout=SEND_TIMEOUT, retry=SEND_RETRY)
    else:
        queue.enqueue_at(at, send_outbound, message_id, job_timeout=SEND_TIMEOUT, retry=SEND_RETRY)


def queue_reply(rt: Runtime, conversation_id: int, text: str, author: str = "bot") -> int:
    """Store a message for the customer and queue its send; returns the message id.

    The stored row is the outbox: if Redis is down the send is not lost, ``drain_outbox``
    queues it once Redis is back.
    """
    with rt.uow() as uow:
        message_id = services.record_outbound(conversation_id, text, uow, author=author)
        uow.commit()
    send_soon(rt, message_id)
    return message_id


def resolve_and_ask(rt: Runtime, ticket: Ticket, agent: str, fields: Mapping[str, Any], uow: UnitOfWork) -> Ticket:
    """Resolve the ticket (``fields``: see ``services.resolve_ticket``) and, once that commits,
    send the customer the rating question: the one way the console and the API close a ticket."""
    services.resolve_ticket(ticket.id, agent, uow, **fields)
    # The customer's language from what they last wrote: the bot's note of it may be long gone.
    said = services.customer_text(ticket.conversation_id, uow) if ticket.conversation_id else ""
    question = services.ask_for_rating(ticket, rt.content, uow, rt.settings.conversation_ttl,
                                       lang=written_language(said))
    if question is not None:
        uow.after_commit(lambda: send_soon(rt, question))
    return ticket


def send_soon(rt: Runtime, message_id: int, at: datetime | None = None) -> None:
    """Queue the send of a committed outbox message; if Redis is down, it stays in the outbox, and
    ``drain_outbox`` queues it once Redis is back."""
    try:
        enqueue_send(rt.redis, message_id, at)
    except RedisError as exc:
        log.warning("message %s: left in the outbox for the drain, Redis unavailable (%s)", message_id, exc)


def send_outbound(message_id: int) -> str:
    """Send a queued outbound message through its channel; returns the state it is left in.

    Claim (commit), call the platform, record the outcome (a new transaction): no transaction
    or lock is held while the platform answers. A job for a message that is not due (sent,
    claimed by another worker, waiting out its backoff) does nothing: running twice is safe.
    """
    rt = runtime()
    rt.after_fork()
    with rt.uow() as uow:
        claim = outbox.claim_send(message_id, uow)
        uow.commit()
    if claim is None:
        return "skipped"
    state, error = models.SENT, None
    try:
        sender_for(rt, claim.outbound.channel).send(claim.outbound)
    except SendFailed as exc:
        state, error = _STATES.get(type(exc), outbox.RETRY), str(exc)
        # The platform's code where it gave one (45015), else the state ("failed" for a retry).
        code = str(exc.code) if exc.code is not None else models.FAILED if state == outbox.RETRY else state
        metrics.OUTBOUND_ERRORS.labels(channel=claim.outbound.channel, code=code).inc()
    else:
        metrics.MESSAGES.labels(channel=claim.outbound.channel, direction="out").inc()
    with rt.uow() as uow:
        outcome = outbox.record_send(claim, state, uow, error)
        uow.commit()
    log.info("message %s, try %d: %s", message_id, claim.attempt, outcome.state)
    if outcome.retry_at is not None:
        send_soon(rt, message_id, outcome.retry_at)
    return outcome.state


# The platform's answer -> the state a message is left in; any other SendFailed is worth a retry.
_STATES: dict[type, str] = {RecipientUnreachable: models.UNREACHABLE, QuotaExceeded: models.QUOTA_EXCEEDED,
                            SendOutcomeUnknown: models.UNKNOWN}


def sender_for(rt: Runtime, channel: str):  # type: ignore[no-untyped-def]
    """The channel's sender: WeChat's customer-service API, the web chat, and the public replies
    of Weibo (a comment) and Twitter (a reply tweet), made from the settings when first needed.
    A channel that is not set up fails the send (``SendFailed``) with the setting it needs."""
    senders = {"wechat": lambda: rt.wechat_sender, webchat.NAME: webchat.WebChatSender,
               weibo.NAME: lambda: weibo.WeiboSender.from_settings(rt.settings),
               twitter.NAME: lambda: twitter.TwitterSender.from_settings(rt.settings)}
    if channel not in senders:
        raise SendFailed(f"no sender for channel {channel!r}")
    try:
        return senders[channel]()
    except (ConfigError, AuthExpired) as exc:
        raise SendFailed(f"{channel} is not set up for sending: {exc}") from None


def drain_outbox() -> int:
    """Every minute: claims whose lease ran out become UNKNOWN, and every send that is due (queued
    while Redis was down, or its retry's time has come) is queued again. Returns how many."""
    rt = runtime()
    rt.after_fork()
    with rt.uow() as uow:
        expired = outbox.expire_leases(uow)
        due = outbox.due_sends(uow)
        uow.commit()
    if expired:
        log.warning("messages %s: not confirmed in time, marked unknown", expired)
    for message_id in due:
        enqueue_send(rt.redis, message_id)
    return len(due)
