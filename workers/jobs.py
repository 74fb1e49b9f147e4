"""rq jobs. Module-level functions that take ids, never ORM objects.

The worker process sets ``RUNTIME`` before it forks, so each job reuses the loaded bot and
settings instead of building them again.
"""
from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry

from channels.base import OutboundMessage, QuotaExceeded, RecipientUnreachable, SendFailed
from crm_store import models, services
from workers.runtime import Runtime

log = logging.getLogger(__name__)

RUNTIME: Runtime | None = None
QUEUE = "default"
MAX_SEND_ATTEMPTS = 5
SEND_RETRY = Retry(max=MAX_SEND_ATTEMPTS - 1, interval=[5, 30, 120, 600])


def runtime() -> Runtime:
    if RUNTIME is None:
        raise RuntimeError("workers.jobs.RUNTIME is not set: start jobs with `crmbot worker`")
    return RUNTIME


def enqueue_send(redis: Redis, message_id: int) -> None:
    """Queue the send of a stored outbound message (the row itself is the durable outbox)."""
    Queue(QUEUE, connection=redis).enqueue(send_outbound, message_id, retry=SEND_RETRY, job_timeout=60,
                                           job_id=f"send-outbound-{message_id}")


def queue_reply(rt: Runtime, conversation_id: int, text: str, author: str = "bot") -> int:
    """Store a message for the customer and queue its send; returns the message id.

    The stored row is the outbox: if Redis is down the send is not lost, ``drain_outbox``
    queues it once Redis is back.
    """
    with rt.uow() as uow:
        message_id = services.record_outbound(conversation_id, text, uow, author=author)
        uow.commit()
    try:
        enqueue_send(rt.redis, message_id)
    except RedisError as exc:
        log.warning("message %s: queued in the store only, Redis unavailable (%s)", message_id, exc)
    return message_id


def send_outbound(message_id: int) -> str:
    """Send a queued outbound message through its channel and record the outcome.

    Idempotent: a message already sent (or given up on) is not sent again; a Redis lock keeps
    two workers from sending the same message at once.
    """
    rt = runtime()
    rt.after_fork()
    lock = rt.redis.lock(f"crmbot:lock:send:{message_id}", timeout=120, blocking=False)
    if not lock.acquire():
        return "locked"
    try:
        with rt.uow() as uow:
            message = uow.messages.get(message_id)
            if message is None or message.delivery != models.QUEUED:
                return "skipped"
            conversation = uow.conversations.get(message.conversation_id)
            identity = uow.identities.get(conversation.identity_id)
            outbound = OutboundMessage(conversation.channel, conversation.account, identity.external_id,
                                       message.text, idempotency_key=f"message-{message.id}")
            message.attempts += 1
            try:
                sender_for(rt, outbound.channel).send(outbound)
            except (RecipientUnreachable, QuotaExceeded) as exc:
                message.delivery, message.delivery_error = models.UNREACHABLE, str(exc)
            except SendFailed as exc:
                message.delivery_error = str(exc)
                if message.attempts >= MAX_SEND_ATTEMPTS:
                    message.delivery = models.FAILED
                uow.commit()
                if message.delivery == models.FAILED:
                    return message.delivery
                raise  # rq retries on the SEND_RETRY schedule
            else:
                message.delivery, message.delivery_error = models.SENT, None
            uow.commit()
            log.info("message %s: %s", message_id, message.delivery)
            return message.delivery
    finally:
        lock.release()


def sender_for(rt: Runtime, channel: str):  # type: ignore[no-untyped-def]
    senders = {"wechat": lambda: rt.wechat_sender}
    if channel not in senders:
        raise SendFailed(f"no sender for channel {channel!r}")
    return senders[channel]()


def drain_outbox() -> int:
    """Re-queue every outbound message still waiting (for example, queued while Redis was down)."""
    rt = runtime()
    rt.after_fork()
    with rt.uow() as uow:
        waiting = [m.id for m in uow.messages.queued(limit=500)]
    for message_id in waiting:
        enqueue_send(rt.redis, message_id)
    return len(waiting)
