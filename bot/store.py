"""The CRM store as the bot sees it: every read and write its actions make.

``BotStore`` is the port; ``UnitOfWorkStore`` is the real one, which calls the store's service
functions on the unit of work that records the message, so a message and its effects land
together. Unit tests give the router a fake (``tests/fakes/bot_store.FakeUnitOfWork``).
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from config.content import LevelRule
from crm_store import membership, services
from crm_store.membership import Standing
from crm_store.uow import UnitOfWork

if TYPE_CHECKING:  # the rows the store's service functions return, named for type hints only
    from crm_store.models import Lead, Member, PointsEntry, Ticket


class BotStore(Protocol):
    """What the bot reads and writes, within one message's transaction."""

    def member(self, customer_id: int) -> Member | None: ...

    def member_id(self, customer_id: int) -> int | None: ...

    def level(self, member_id: int, levels: Sequence[LevelRule]) -> LevelRule: ...

    def standing(self, member_id: int, levels: Sequence[LevelRule]) -> Standing: ...

    def points_history(self, member_id: int, limit: int) -> list[PointsEntry]: ...

    def bind_member(self, customer_id: int, phone: str) -> Member: ...

    def open_ticket(self, customer_id: int, conversation_id: int, *, source: str, category: str, priority: str,
                    first_response_due: datetime, resolution_due: datetime, description: str,
                    order_no: str | None) -> Ticket: ...

    def add_to_ticket(self, ticket_id: int, *, order_no: str | None = None, detail: str | None = None) -> Ticket: ...

    def cancel_handoff(self, conversation_id: int) -> Ticket | None: ...

    def waiting_handoff(self, conversation_id: int) -> Ticket | None: ...

    def open_ticket_in(self, conversation_id: int) -> Ticket | None: ...

    def record_csat(self, ticket_id: int, score: int | None, comment: str | None = None) -> Ticket: ...

    def capture_lead(self, customer_id: int, conversation_id: int, *, name: str, phone: str, interest: str,
                     keyword: str | None) -> Lead: ...

    def save_state(self, conversation_id: int, state: Mapping[str, Any], ttl: int) -> None: ...

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` (a call to an outside service) once the message's transaction has landed."""


class UnitOfWorkStore:
    """``BotStore`` on a unit of work: the store's service functions, uncommitted."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def member(self, customer_id: int) -> Member | None:
        return membership.member_of(customer_id, self.uow)

    def member_id(self, customer_id: int) -> int | None:
        return membership.member_id_of(customer_id, self.uow)

    def level(self, member_id: int, levels: Sequence[LevelRule]) -> LevelRule:
        return membership.level(member_id, levels, self.uow)

    def standing(self, member_id: int, levels: Sequence[LevelRule]) -> Standing:
        return membership.standing(member_id, levels, self.uow)

    def points_history(self, member_id: int, limit: int) -> list[PointsEntry]:
        return membership.history(member_id, self.uow, limit)

    def bind_member(self, customer_id: int, phone: str) -> Member:
        return membership.bind_member(customer_id, phone, self.uow)[0]

    def open_ticket(self, customer_id: int, conversation_id: int, **fields: Any) -> Ticket:
        return services.open_ticket(customer_id, conversation_id, self.uow, **fields)

    def add_to_ticket(self, ticket_id: int, *, order_no: str | None = None, detail: str | None = None) -> Ticket:
        return services.add_to_ticket(ticket_id, self.uow, order_no=order_no, detail=detail)

    def cancel_handoff(self, conversation_id: int) -> Ticket | None:
        return services.cancel_handoff(conversation_id, self.uow)

    def waiting_handoff(self, conversation_id: int) -> Ticket | None:
        return services.waiting_handoff(conversation_id, self.uow)

    def open_ticket_in(self, conversation_id: int) -> Ticket | None:
        return services.open_ticket_in(conversation_id, self.uow)

    def record_csat(self, ticket_id: int, score: int | None, comment: str | None = None) -> Ticket:
        return services.record_csat(ticket_id, score, self.uow, comment=comment)

    def capture_lead(self, customer_id: int, conversation_id: int, *, name: str, phone: str, interest: str,
                     keyword: str | None) -> Lead:
        return services.capture_lead_in_conversation(conversation_id, self.uow, name=name, phone=phone,
                                                     interest=interest, keyword=keyword)[0]

    def save_state(self, conversation_id: int, state: Mapping[str, Any], ttl: int) -> None:
        services.save_conversation_state(conversation_id, state, self.uow, ttl)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.uow.after_commit(action)
