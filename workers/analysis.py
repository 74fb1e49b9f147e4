"""The analysis job: every inbound text message gets its sentiment, intent, keywords and watch
terms stored (``MessageAnalysis``), and may escalate.

* A negative complaint in a conversation whose open ticket was opened before it raises the ticket
  one priority step (once per ticket), with the earlier due times of the new priority; straight
  to P1, with its category, when it tells of food safety or a legal threat.
* A strongly negative message (sentiment score at or below ``thresholds.escalate_sentiment``) in a
  conversation with no open ticket and no flow under way opens one (source ``analysis``), so a
  person looks at it even when the bot did not hand it over.

The store is the queue (``crm_store.analyses``): the job runs every few seconds on the ``analysis``
queue and takes what waits, oldest first, in batches; the models run outside any transaction.
Its lag (message stored to analysis stored) is kept on each analysis and exported.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from bot import policy
from bot.understanding import models_reading
from config.content import BotContent
from crm_store import analyses, listening, services
from crm_store.models import as_utc, utcnow
from crm_store.uow import UnitOfWork
from nlp.keywords import watch_terms as match_watch_terms
from nlp.sentiment import Sentiment
from workers.metrics import observe_analysis_lag

log = logging.getLogger(__name__)
BATCH = 500
KEYWORDS = 5  # keywords kept per message
DEFAULT_ESCALATE = 0.05


def read(text: str, terms: list[str], content: BotContent) -> tuple[dict[str, Any], Sentiment]:
    """The models' reading of one message, the intent weighed with the brand's words as the
    router weighs it: the columns of its ``MessageAnalysis``, and the sentiment."""
    result, intent, confidence = models_reading(text, content.rules, keywords=KEYWORDS)
    return {"lang": result.lang, "sentiment": result.sentiment.label,
            "sentiment_score": round(result.sentiment.score, 4), "intent": intent,
            "intent_confidence": round(confidence, 4), "keywords": list(result.keywords),
            "watch_terms": match_watch_terms(text, terms) if terms else []}, result.sentiment


def analyze_waiting(new_uow: Callable[[], UnitOfWork], content: BotContent, limit: int = BATCH) -> list[int]:
    """Analyse up to ``limit`` waiting messages and apply the escalation rules; returns the ids of
    the messages analysed by this call."""
    with new_uow() as uow:
        batch = analyses.waiting(uow, limit)
        terms = [row.term for row in listening.watch_terms(uow)]
    if not batch:
        return []
    readings = {m.id: read(m.text, terms, content) for m in batch}
    with new_uow() as uow:
        stored = analyses.store(uow, [{"message_id": m.id, "created_at": m.created_at, **readings[m.id][0]}
                                      for m in batch])
        for message in (m for m in batch if m.id in stored):
            escalate(message, *readings[message.id], content, uow)
        uow.commit()
    for lag_ms in stored.values():
        observe_analysis_lag(lag_ms / 1000)
    return list(stored)


def escalate(message: analyses.Waiting, reading: dict[str, Any], mood: Sentiment, content: BotContent,
             uow: UnitOfWork) -> str | None:
    """The escalation rules for one analysed message (see the module); what was done, if anything."""
    rules = content.rules
    category = policy.category(message.text, rules)
    priority = policy.priority(message.text, category, mood, None, rules)
    urgent = priority == "P1"  # food safety or a legal threat ("孩子喝完吐了"), told calmly or not
    if reading["sentiment"] != "neg" and not urgent:
        return None
    ticket = services.open_ticket_in(message.conversation_id, uow, for_update=True)
    if ticket is not None:
        # Only a complaint that comes after the ticket was opened: the one that opened it set its
        # priority already (anger included).
        if reading["intent"] != "complaint" or message.created_at <= as_utc(ticket.created_at) \
                or ticket.priority == "P1":
            return None
        if urgent:  # told after the ticket opened: the top priority at once, and the category that says so
            category = category if category in rules.urgent_categories else ticket.category
        elif analyses.raised_before(ticket, uow):
            return None
        else:
            priority, category = f"P{int(ticket.priority[1]) - 1}", ticket.category
        first_due, resolution_due = policy.due_times(priority, as_utc(ticket.created_at), rules)
        analyses.raise_priority(ticket, priority, first_due, resolution_due, uow, reason=f"message {message.id}",
                                category=category)
        analyses.mark(uow, message.id, "priority_raised")
        return "priority_raised"
    if reading["sentiment_score"] > float(rules.thresholds.get("escalate_sentiment", DEFAULT_ESCALATE)):
        return None
    if "flow" in services.conversation_state(message.conversation_id, uow):
        return None  # the bot is taking the complaint down, or binding a card: its ticket comes from there
    customer_id = uow.conversations.get(message.conversation_id).customer_id
    first_due, resolution_due = policy.due_times(priority, utcnow(), rules)
    ticket = services.open_ticket(customer_id, message.conversation_id, uow, source="analysis", category=category,
                                  priority=priority, first_response_due=first_due, resolution_due=resolution_due,
                                  description=message.text)
    analyses.mark(uow, message.id, "ticket_opened")
    log.info("message %s: strongly negative, ticket %s opened", message.id, ticket.reference)
    return "ticket_opened"


def analyze_messages() -> int:
    """rq job (every few seconds on the ``analysis`` queue, see ``workers.schedule``): analyse
    what waits, batch after batch, for at most a few batches; returns how many. Two runs at once
    store each analysis once (the second finds them stored); a Redis lock keeps them apart
    anyway, so a batch is not read twice for nothing."""
    from workers.jobs import runtime

    rt = runtime()
    rt.after_fork()
    lock = rt.redis.lock("crmbot:analysis", timeout=120, blocking=False)
    if not lock.acquire(blocking=False):
        return 0
    done = 0
    try:
        for _ in range(10):  # bounded: the next run takes the rest
            stored = analyze_waiting(rt.uow, rt.content)
            done += len(stored)
            if len(stored) < BATCH:
                break
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - it expired meanwhile
            pass
    return done
