"""Receive one inbound message: record it exactly once, answer it, store the answer."""
from __future__ import annotations

import logging
import time
from typing import Callable

from sqlalchemy.exc import DBAPIError, IntegrityError

from bot.router import HandlerFailed, Router
from bot.store import UnitOfWorkStore
from channels.base import InboundMessage
from crm_store import services
from crm_store.uow import UnitOfWork

log = logging.getLogger(__name__)


def receive(msg: InboundMessage, new_uow: Callable[[], UnitOfWork], router: Router) -> str:
    """Record ``msg`` and its passive reply in one transaction and return the reply text.

    The inbound row and its reply commit together, so a platform retry finds either both (and
    gets the same reply back) or neither. A retry racing the first attempt loses on the unique
    dedupe key, rolls back, and answers from what the first attempt stored. A signed request
    reused with another payload raises ``ReplayedPush``, with nothing stored.
    """
    started = time.perf_counter()
    route = True
    # The models read the message before the transaction: on SQLite the transaction holds the
    # store's write lock, and every other webhook would wait while the models run.
    reading = router.read(msg)
    for attempt in (1, 2, 3):
        with new_uow() as uow:
            try:
                recorded = services.record_inbound(msg, uow)
                if recorded.duplicate:
                    return recorded.stored_reply or ""
                reply = router.answer(msg, recorded, UnitOfWorkStore(uow), reading) if route \
                    else router.content.say("busy")
                if reply:
                    services.record_passive_reply(recorded, reply, uow,
                                                  latency_ms=round((time.perf_counter() - started) * 1000))
                uow.commit()
                return reply
            except HandlerFailed:
                # Undo what the broken handler wrote; record the message again with the polite answer.
                uow.rollback()
                route = False
            except IntegrityError:
                # Another process stored this message (or this customer) first; look again.
                log.info("%s %s: lost a race on attempt %d, retrying", msg.channel, msg.dedupe_key, attempt)
                uow.rollback()
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # The pool dropped a connection it could not use any more (lost, or holding stale
                # prepared statements); nothing was stored, so the next attempt starts afresh.
                log.warning("%s %s: store connection dropped on attempt %d, retrying", msg.channel,
                            msg.dedupe_key, attempt)
                uow.rollback()
    raise RuntimeError(f"could not record {msg.channel} message {msg.dedupe_key}")
