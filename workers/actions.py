"""Staff actions on tickets, shared by the console, the JSON API and the tests.

Each commits its store change, then does what follows in the conversation: a resolved ticket
hands the conversation back to the bot, which asks the customer for a rating.
"""
from __future__ import annotations

from bot.flows import start_csat
from crm_store import services
from crm_store.models import utcnow
from workers.jobs import queue_reply
from workers.runtime import Runtime


def claim(rt: Runtime, ticket_id: int, agent: str) -> None:
    with rt.uow() as uow:
        services.claim_ticket(ticket_id, agent, uow)
        uow.commit()


def agent_reply(rt: Runtime, ticket_id: int, agent: str, text: str) -> int:
    """An agent's message to the customer, sent through the customer's channel by a worker."""
    with rt.uow() as uow:
        ticket = services.claim_ticket(ticket_id, agent, uow)
        if ticket.conversation_id is None:
            raise LookupError(f"ticket {ticket_id} has no conversation to reply in")
        ticket.first_response_at = ticket.first_response_at or utcnow()
        conversation_id = ticket.conversation_id
        uow.commit()
    return queue_reply(rt, conversation_id, text, author=f"agent:{agent}")


def resolve(rt: Runtime, ticket_id: int, agent: str, *, complaint_level: str | None = None,
            compensation: str | None = None) -> None:
    """Resolve the ticket; the bot takes the conversation back and asks for a 1-5 rating."""
    with rt.uow() as uow:
        ticket = services.resolve_ticket(ticket_id, agent, uow, complaint_level=complaint_level,
                                         compensation=compensation)
        conversation_id, reference, lang = ticket.conversation_id, ticket.reference, "zh"
        if conversation_id is not None:
            ticket.csat_asked_at = utcnow()
            state = services.conversation_state(conversation_id, uow)
            lang = state.get("lang", "zh")  # the customer's language, kept by the bot
            start_csat(state, ticket_id, utcnow().timestamp())
            services.save_conversation_state(conversation_id, state, uow, rt.settings.conversation_ttl)
        uow.commit()
    if conversation_id is None:
        return
    queue_reply(rt, conversation_id, rt.content.say("csat_ask", lang, reference=reference))
