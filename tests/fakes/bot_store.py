"""A fake of the store as the bot sees it (``bot.store.BotStore``): the FakeUnitOfWork of the
bot's unit tests. Rows are plain objects in lists; nothing is committed because nothing is
stored anywhere but here."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

from config.content import LevelRule
from crm_store.membership import Standing


class FakeUnitOfWork:
    """Members, tickets, leads and the saved state of one test, in memory."""

    def __init__(self) -> None:
        self.members: dict[int, SimpleNamespace] = {}  # customer id -> member
        self.points: dict[int, list[SimpleNamespace]] = {}  # member id -> entries, newest first
        self.tickets: list[SimpleNamespace] = []
        self.leads: list[SimpleNamespace] = []
        self.states: dict[int, dict[str, Any]] = {}
        self.after_commit_actions: list[Callable[[], None]] = []
        self._ids = itertools.count(1)

    # -- membership
    def add_member(self, customer_id: int, card_no: str, phone: str, points: Sequence[tuple[int, str]] = ()
                   ) -> SimpleNamespace:
        member = SimpleNamespace(id=next(self._ids), customer_id=customer_id, card_no=card_no, phone=phone)
        self.members[customer_id] = member
        self.points[member.id] = [SimpleNamespace(points=p, reason=r, created_at=datetime.now(timezone.utc))
                                  for p, r in reversed(points)]
        return member

    def member(self, customer_id: int) -> SimpleNamespace | None:
        return self.members.get(customer_id)

    def member_id(self, customer_id: int) -> int | None:
        member = self.members.get(customer_id)
        return member.id if member else None

    def _earned(self, member_id: int) -> tuple[int, int]:
        entries = self.points.get(member_id, [])
        return sum(e.points for e in entries), sum(e.points for e in entries if e.points > 0)

    def level(self, member_id: int, levels: Sequence[LevelRule]) -> LevelRule:
        return self.standing(member_id, levels).level

    def standing(self, member_id: int, levels: Sequence[LevelRule]) -> Standing:
        balance, lifetime = self._earned(member_id)
        ordered = sorted(levels, key=lambda lv: lv.min_points)
        reached = [lv for lv in ordered if lv.min_points <= lifetime]
        higher = [lv for lv in ordered if lv.min_points > lifetime]
        return Standing(balance, lifetime, reached[-1], higher[0] if higher else None)

    def points_history(self, member_id: int, limit: int) -> list[SimpleNamespace]:
        return self.points.get(member_id, [])[:limit]

    def bind_member(self, customer_id: int, phone: str) -> SimpleNamespace:
        return self.members.get(customer_id) or self.add_member(customer_id, f"C{len(self.members) + 1:05d}", phone)

    # -- tickets
    def open_ticket(self, customer_id: int, conversation_id: int, **fields: Any) -> SimpleNamespace:
        ticket = SimpleNamespace(id=next(self._ids), reference=f"T20261202-{len(self.tickets) + 1:04d}",
                                 customer_id=customer_id, conversation_id=conversation_id, status="open",
                                 csat_score=None, csat_comment=None, **fields)
        self.tickets.append(ticket)
        return ticket

    def _ticket(self, ticket_id: int) -> SimpleNamespace:
        return next(t for t in self.tickets if t.id == ticket_id)

    def add_to_ticket(self, ticket_id: int, *, order_no: str | None = None, detail: str | None = None
                      ) -> SimpleNamespace:
        ticket = self._ticket(ticket_id)
        ticket.order_no = order_no or ticket.order_no
        if detail:
            ticket.description += "\n" + detail
        return ticket

    def waiting_handoff(self, conversation_id: int) -> SimpleNamespace | None:
        return self.open_ticket_in(conversation_id, source="handoff")

    def open_ticket_in(self, conversation_id: int, source: str | None = None) -> SimpleNamespace | None:
        return next((t for t in reversed(self.tickets) if t.conversation_id == conversation_id
                     and source in (None, t.source) and t.status in ("open", "claimed")), None)

    def cancel_handoff(self, conversation_id: int) -> SimpleNamespace | None:
        ticket = self.waiting_handoff(conversation_id)
        if ticket is None or ticket.status != "open":
            return None
        ticket.status = "cancelled"
        return ticket

    def record_csat(self, ticket_id: int, score: int | None, comment: str | None = None) -> SimpleNamespace:
        ticket = self._ticket(ticket_id)
        ticket.csat_score = score if score is not None else ticket.csat_score
        ticket.csat_comment = comment if comment is not None else ticket.csat_comment
        return ticket

    # -- leads
    def capture_lead(self, customer_id: int, conversation_id: int, *, name: str, phone: str, interest: str,
                     keyword: str | None) -> SimpleNamespace:
        lead = SimpleNamespace(id=next(self._ids), customer_id=customer_id, name=name, phone=phone, interest=interest,
                               keyword=keyword)
        self.leads.append(lead)
        return lead

    # -- the bot's state
    def save_state(self, conversation_id: int, state: Mapping[str, Any], ttl: int) -> None:
        self.states[conversation_id] = dict(state)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.after_commit_actions.append(action)

    def commit(self) -> None:
        """What the real unit of work's commit does after the transaction: run the outside calls."""
        actions, self.after_commit_actions = self.after_commit_actions, []
        for action in actions:
            action()

    def state(self, conversation_id: int) -> Mapping[str, Any]:
        return self.states.get(conversation_id, {})
