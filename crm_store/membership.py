"""Members, the points ledger, and linking one person's records across channels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import bindparam, func, select, update

from config.content import LevelRule
from crm_store.models import (ChannelIdentity, Conversation, CustomerMerge, Lead, Member, PointsEntry, Ticket,
                              utcnow)
from crm_store import staff
from crm_store.references import next_reference
from crm_store.uow import UnitOfWork

# Which sign each kind of entry may carry; adjust may go either way.
_SIGNS = {"earn": 1, "refund": 1, "redeem": -1, "expire": -1}

# Self-service reads: plain values, so a member's question opens no ORM session.
MEMBER_ID = select(Member.id).where(Member.customer_id == bindparam("customer_id"))
_POINTS_SUM = func.coalesce(func.sum(PointsEntry.points), 0)
BALANCE = select(_POINTS_SUM).where(PointsEntry.member_id == bindparam("member_id"))
LIFETIME_EARNED = select(_POINTS_SUM).where(PointsEntry.member_id == bindparam("member_id"),
                                            PointsEntry.kind == "earn")


class PointsError(ValueError):
    """A points entry that would break the ledger (wrong sign, overdraw)."""


@dataclass(frozen=True)
class Standing:
    """What a member sees: balance, lifetime points, level and the next level."""

    balance: int
    lifetime: int
    level: LevelRule
    next_level: LevelRule | None

    @property
    def points_to_next(self) -> int | None:
        return None if self.next_level is None else self.next_level.min_points - self.lifetime


def member_of(customer_id: int, uow: UnitOfWork) -> Member | None:
    return uow.session.scalar(select(Member).filter_by(customer_id=customer_id))


def member_id_of(customer_id: int, uow: UnitOfWork) -> int | None:
    """The customer's member id, if any: a plain read, so asking about a non-member (most of the
    self-service questions before binding) opens no ORM session."""
    return uow.execute(MEMBER_ID, {"customer_id": customer_id}).scalar()


def add_points(member_id: int, kind: str, points: int, reason: str, idempotency_key: str,
               uow: UnitOfWork) -> PointsEntry:
    """Append a ledger entry once per ``idempotency_key``; a repeat returns the first entry."""
    existing = uow.session.scalar(select(PointsEntry).filter_by(idempotency_key=idempotency_key))
    if existing is not None:
        return existing
    sign = _SIGNS.get(kind)
    if kind not in _SIGNS and kind != "adjust":
        raise PointsError(f"unknown points kind {kind!r}")
    if points == 0 or (sign is not None and points * sign < 0):
        raise PointsError(f"{kind} entries must be {'positive' if sign == 1 else 'negative'} and not zero")
    if points < 0 and balance(member_id, uow) + points < 0:
        raise PointsError("the balance cannot go below zero")
    entry = PointsEntry(member_id=member_id, kind=kind, points=points, reason=reason,
                        idempotency_key=idempotency_key)
    uow.session.add(entry)
    uow.flush()
    return entry


def balance(member_id: int, uow: UnitOfWork) -> int:
    return uow.execute(BALANCE, {"member_id": member_id}).scalar()


def history(member_id: int, uow: UnitOfWork, limit: int) -> list[PointsEntry]:
    return list(uow.session.scalars(select(PointsEntry).filter_by(member_id=member_id)
                                    .order_by(PointsEntry.id.desc()).limit(limit)))


def _levels_at(lifetime: int, levels: Sequence[LevelRule]) -> tuple[LevelRule, LevelRule | None]:
    """The level reached with ``lifetime`` points earned, and the next one (None at the top)."""
    ordered = sorted(levels, key=lambda lv: lv.min_points)
    reached = [lv for lv in ordered if lv.min_points <= lifetime] or ordered[:1]
    higher = [lv for lv in ordered if lv.min_points > lifetime]
    return reached[-1], higher[0] if higher else None


def level(member_id: int, levels: Sequence[LevelRule], uow: UnitOfWork) -> LevelRule:
    """The member's level alone (ticket priority needs no balance)."""
    return _levels_at(uow.execute(LIFETIME_EARNED, {"member_id": member_id}).scalar(), levels)[0]


def standing(member_id: int, levels: Sequence[LevelRule], uow: UnitOfWork) -> Standing:
    """Levels are reached by lifetime points earned (成长值): redeeming never demotes a member."""
    lifetime = uow.execute(LIFETIME_EARNED, {"member_id": member_id}).scalar()
    reached, following = _levels_at(lifetime, levels)
    return Standing(balance(member_id, uow), lifetime, reached, following)


def bind_member(customer_id: int, phone: str, uow: UnitOfWork) -> tuple[Member, bool]:
    """Link ``customer_id`` to the membership card registered with ``phone`` (a new card if
    none exists). Returns the member and whether a new card was opened. When the card, or a
    lead with this phone, belongs to another customer record, the two records are merged."""
    member = uow.session.scalar(select(Member).filter_by(phone=phone))
    created = member is None
    if member is None:
        member = Member(phone=phone, card_no=_next_card_no(uow), customer_id=customer_id, bound_at=utcnow())
        uow.session.add(member)
    elif member.customer_id is None:
        member.customer_id, member.bound_at = customer_id, utcnow()
    elif member.customer_id != customer_id:
        # The card already belongs to this person's record on another channel: join the two.
        merge_customers(customer_id, member.customer_id, f"bound member card {member.card_no}", uow)
        customer_id = member.customer_id
    for other in set(uow.session.scalars(select(Lead.customer_id).filter(
            Lead.phone == phone, Lead.customer_id != customer_id))):
        merge_customers(other, customer_id, "lead left the same phone", uow)
    uow.customers.get(customer_id).phone = phone
    uow.flush()
    return member, created


def _next_card_no(uow: UnitOfWork) -> str:
    return next_reference("M", uow, digits=6).replace("-", "")


# The rows that follow a customer when records merge. Messages are not listed: their key to
# (conversation, customer) moves them with their conversation, on the way there and back.
_MOVABLE = {"identities": ChannelIdentity, "conversations": Conversation, "tickets": Ticket, "leads": Lead}


def merge_customers(from_customer_id: int, into_customer_id: int, reason: str, uow: UnitOfWork,
                    actor: str = "system") -> CustomerMerge:
    """Move everything of ``from`` into ``into``, recording the moved ids so it can be undone;
    audited, by the staff member who merged by hand or by ``system`` (a card bound, a lead)."""
    if from_customer_id == into_customer_id:
        raise ValueError("cannot merge a customer into itself")
    for customer_id in (from_customer_id, into_customer_id):
        if uow.customers.get(customer_id) is None:
            raise LookupError(f"customer {customer_id} does not exist")
    moved = {}
    for name, model in _MOVABLE.items():
        ids = list(uow.session.scalars(select(model.id).filter_by(customer_id=from_customer_id)))
        if ids:
            uow.session.execute(update(model).where(model.id.in_(ids)).values(customer_id=into_customer_id))
        moved[name] = ids
    merge = CustomerMerge(from_customer_id=from_customer_id, into_customer_id=into_customer_id, moved=moved,
                          reason=reason)
    uow.session.add(merge)
    uow.flush()
    staff.audit(actor, "merge", uow, "customer", into_customer_id, merge_id=merge.id,
                from_customer_id=from_customer_id, reason=reason)
    return merge


def unmerge(merge_id: int, uow: UnitOfWork, actor: str = "system") -> CustomerMerge:
    """Undo a merge: the recorded rows go back to the original customer. ``LookupError`` for an
    unknown merge, ``ValueError`` for one undone already."""
    merge = uow.session.get(CustomerMerge, merge_id)
    if merge is None:
        raise LookupError(f"merge {merge_id} does not exist")
    if merge.reverted_at is not None:
        raise ValueError(f"merge {merge_id} was undone already")
    for name, model in _MOVABLE.items():
        ids = merge.moved.get(name) or []
        if ids:
            uow.session.execute(update(model).where(model.id.in_(ids)).values(customer_id=merge.from_customer_id))
    merge.reverted_at = utcnow()
    uow.flush()
    staff.audit(actor, "unmerge", uow, "customer", merge.from_customer_id, merge_id=merge.id,
                into_customer_id=merge.into_customer_id)
    return merge
